"""The submission service: dry runs write nothing, commits are all-or-nothing and versioned."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.cycles.models import CycleReopening, LearningCycle, ReportingPeriod
from qicollab.schedule.windows import WindowState
from qicollab.submissions.errors import (
    DuplicateSubmissionError,
    InvalidSubmissionError,
    JustificationRequiredError,
    PHIRefusedError,
    ReasonRequiredError,
    WindowClosedError,
)
from qicollab.submissions.models import (
    AggregateValue,
    PatientRecord,
    Submission,
    SubmissionBatch,
    SubmissionSource,
    SubmissionStatus,
)
from qicollab.submissions.services import PlanAction, SubmissionService
from tests.submissions.conftest import NOW, aggregate_csv, patient_csv, patient_rows


def counts(session):
    return {
        model.__name__: session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (Submission, SubmissionBatch, AggregateValue, PatientRecord)
    }


class TestPreview:
    def test_preview_reads_rows_and_writes_nothing(self, world, service, db_session):
        before = counts(db_session)
        result = service.preview(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,45,50,,", "2026-02,40,48,1,fine"),
            filename="hh.csv",
        )
        assert result.ok
        assert result.rows_read == 2
        assert [p.action for p in result.periods] == [PlanAction.ADD, PlanAction.ADD]
        assert result.count(PlanAction.ADD) == 2
        db_session.rollback()
        assert counts(db_session) == before

    def test_preview_lists_errors_by_row_and_column(self, world, service):
        result = service.preview(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,45,50,,", "2026-02,60,50,,", "2026-03,x,50,,"),
            filename="hh.csv",
        )
        assert not result.ok
        found = {(p.row, p.column, p.rule) for p in result.errors}
        assert (3, "numerator", "numerator_exceeds_denominator") in found
        assert (4, "numerator", "not_a_number") in found
        # The file is known by an opaque name and its extension only (a name can identify).
        assert all(p.file.startswith("upload-") and p.file.endswith(".csv") for p in result.errors)
        assert all(p.fix for p in result.errors)

    def test_preview_says_replace_and_unchanged(self, world, service, db_session):
        data = aggregate_csv("2026-01,45,50,,", "2026-02,40,48,,")
        service.commit(
            member=world.member, measure=world.hh, data=data, filename="a.csv", actor=world.officer
        )
        db_session.commit()
        result = service.preview(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,45,50,,", "2026-02,41,48,,", "2026-03,1,2,,"),
            filename="b.csv",
        )
        actions = {p.period: p.action for p in result.periods}
        assert actions == {
            "2026-01": PlanAction.UNCHANGED,
            "2026-02": PlanAction.REPLACE,
            "2026-03": PlanAction.ADD,
        }
        assert result.needs_reason


class TestCommit:
    def test_commit_stores_versions_values_and_audit(self, world, service, db_session):
        result = service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,45,50,2,ok", "2026-02,40,48,,"),
            filename="hh.csv",
            actor=world.officer,
        )
        db_session.commit()
        assert not result.duplicate
        assert [(v.period, v.version, v.action) for v in result.versions] == [
            ("2026-01", 1, PlanAction.ADD),
            ("2026-02", 1, PlanAction.ADD),
        ]
        value = db_session.scalar(
            sa.select(AggregateValue).where(
                AggregateValue.submission_id == result.versions[0].submission_id
            )
        )
        assert (value.numerator, value.denominator, value.exclusions, value.comment) == (
            45,
            50,
            2,
            "ok",
        )
        events = db_session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "submission.created")
        ).all()
        assert len(events) == 2
        assert {e.actor for e in events} == {world.officer.email}
        batch = db_session.get(SubmissionBatch, result.batch_id)
        assert batch.source is SubmissionSource.CSV
        assert batch.row_count == 2

    def test_a_bad_last_row_stores_nothing(self, world, service, db_session):
        rows = [f"2026-{m:02d},10,20,," for m in range(1, 12)] + ["2026-12,30,20,,"]
        before = counts(db_session)
        with pytest.raises(InvalidSubmissionError) as caught:
            service.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv(*rows),
                filename="hh.csv",
                actor=world.officer,
            )
        db_session.rollback()
        assert counts(db_session) == before
        assert caught.value.problems[0].row == 13

    def test_patient_file_with_bad_last_row_stores_nothing(self, world, service, db_session):
        rows = patient_rows(500)
        rows[-1] = rows[-1].replace(",M,", ",X,").replace(",F,", ",X,")
        with pytest.raises(InvalidSubmissionError) as caught:
            service.commit(
                member=world.member,
                measure=world.surg,
                data=patient_csv(*rows),
                filename="surg.csv",
                actor=world.officer,
            )
        db_session.rollback()
        assert counts(db_session)["PatientRecord"] == 0
        assert caught.value.problems[0].row == 501
        assert caught.value.problems[0].column == "sex"

    def test_resubmission_creates_version_two_and_keeps_version_one(
        self, world, service, db_session
    ):
        first = service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,45,50,,"),
            filename="a.csv",
            actor=world.officer,
        )
        db_session.commit()
        with pytest.raises(ReasonRequiredError):
            service.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv("2026-01,46,50,,"),
                filename="b.csv",
                actor=world.officer,
            )
        db_session.rollback()
        second = service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-01,46,50,,"),
            filename="b.csv",
            actor=world.officer,
            reason="one late audit found",
        )
        db_session.commit()
        (v2,) = second.versions
        (v1,) = first.versions
        assert (v2.version, v2.predecessor_id, v2.action) == (
            2,
            v1.submission_id,
            PlanAction.REPLACE,
        )
        old = db_session.get(Submission, v1.submission_id)
        new = db_session.get(Submission, v2.submission_id)
        db_session.refresh(old)
        assert old.status is SubmissionStatus.SUPERSEDED
        assert old.aggregate.numerator == 45  # content kept
        assert new.reason == "one late audit found"
        assert new.aggregate.numerator == 46
        assert (
            db_session.scalar(
                sa.select(sa.func.count()).where(AuditEvent.action == "submission.corrected")
            )
            == 1
        )

    def test_same_file_twice_returns_the_existing_versions(self, world, service, db_session):
        data = aggregate_csv("2026-01,45,50,,", "2026-02,1,2,,")
        first = service.commit(
            member=world.member, measure=world.hh, data=data, filename="a.csv", actor=world.officer
        )
        db_session.commit()
        again = service.commit(
            member=world.member, measure=world.hh, data=data, filename="a.csv", actor=world.officer
        )
        db_session.commit()
        assert again.duplicate
        assert again.batch_id == first.batch_id
        assert [v.submission_id for v in again.versions] == [
            v.submission_id for v in first.versions
        ]
        assert counts(db_session)["Submission"] == 2
        assert counts(db_session)["SubmissionBatch"] == 1
        with pytest.raises(DuplicateSubmissionError) as caught:
            service.commit(
                member=world.member,
                measure=world.hh,
                data=data,
                filename="a.csv",
                actor=world.officer,
                if_duplicate="raise",
            )
        assert caught.value.result.duplicate

    def test_patient_level_commit_and_correction(self, world, service, db_session):
        data = patient_csv(*patient_rows(300))
        first = service.commit(
            member=world.member, measure=world.surg, data=data, filename="s.csv", actor="api"
        )
        db_session.commit()
        (version,) = first.versions
        assert (version.period, version.rows) == ("2026", 300)
        records = db_session.scalars(
            sa.select(PatientRecord).order_by(PatientRecord.sequence)
        ).all()
        assert len(records) == 300
        assert records[0].case_key == "K00000X"
        assert records[0].event_month == 1
        assert records[0].risk_factors == {
            "age_band": "18-49",
            "sex": "F",
            "asa_class": "01",
            "emergency": 0,
            "bmi": 20.5,
        }
        assert records[0].outcome == 1.0
        second = service.commit(
            member=world.member,
            measure=world.surg,
            data=patient_csv(*patient_rows(301)),
            filename="s2.csv",
            actor="api",
            reason="one more case coded late",
        )
        db_session.commit()
        assert second.versions[0].version == 2
        assert counts(db_session)["PatientRecord"] == 601

    def test_warnings_need_a_justification(self, world, service, db_session):
        history = [f"2026-{m:02d},{40 + m % 3},50,," for m in range(1, 9)]
        service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv(*history),
            filename="h.csv",
            actor=world.officer,
        )
        db_session.execute(sa.update(Submission).values(status=SubmissionStatus.ACCEPTED))
        db_session.commit()
        odd = aggregate_csv("2026-09,5,50,,")
        preview = service.preview(member=world.member, measure=world.hh, data=odd, filename="o.csv")
        assert preview.ok
        assert preview.needs_justification
        assert {p.rule for p in preview.warnings} >= {"history_range"}
        with pytest.raises(JustificationRequiredError):
            service.commit(
                member=world.member, measure=world.hh, data=odd, filename="o.csv", actor="x"
            )
        db_session.rollback()
        result = service.commit(
            member=world.member,
            measure=world.hh,
            data=odd,
            filename="o.csv",
            actor="x",
            justification="ward closed for refurbishment",
        )
        db_session.commit()
        batch = db_session.get(SubmissionBatch, result.batch_id)
        assert batch.warning_justification == "ward closed for refurbishment"

    def test_denominator_far_from_history_is_a_warning(self, world, service, db_session):
        history = [f"2026-{m:02d},{40 + m % 3},{50 + m % 4},," for m in range(1, 9)]
        service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv(*history),
            filename="h.csv",
            actor="x",
        )
        db_session.execute(sa.update(Submission).values(status=SubmissionStatus.ACCEPTED))
        db_session.commit()
        preview = service.preview(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2026-09,420,5100,,"),
            filename="o.csv",
        )
        rules = {(p.column, p.rule) for p in preview.warnings}
        assert ("denominator", "history_range") in rules or (
            "denominator",
            "history_zscore",
        ) in rules


class TestWindows:
    def test_locked_cycle_is_refused_with_the_reason(self, world, service, db_session):
        with pytest.raises(WindowClosedError) as caught:
            service.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv("2025-03,1,2,,"),
                filename="a.csv",
                actor="x",
            )
        assert caught.value.reasons == {"2025-03": WindowState.LOCKED}
        assert "locked" in caught.value.problems[0].message

    def test_planned_cycle_is_before_the_window(self, world, service):
        with pytest.raises(WindowClosedError) as caught:
            service.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv("2027-03,1,2,,"),
                filename="a.csv",
                actor="x",
            )
        assert caught.value.reasons == {"2027-03": WindowState.NOT_YET_OPEN}

    def test_after_the_deadline(self, world, db_session):
        late = SubmissionService(db_session, clock=lambda: dt.datetime(2027, 3, 1, tzinfo=dt.UTC))
        with pytest.raises(WindowClosedError) as caught:
            late.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv("2026-03,1,2,,"),
                filename="a.csv",
                actor="x",
            )
        assert caught.value.reasons == {"2026-03": WindowState.CLOSED_AFTER_DEADLINE}

    def test_a_reopening_opens_a_locked_period_for_that_member(self, world, service, db_session):
        cycle = db_session.scalar(sa.select(LearningCycle).where(LearningCycle.code == "C2025"))
        period = db_session.scalar(
            sa.select(ReportingPeriod).where(ReportingPeriod.label == "2025-03")
        )
        db_session.add(
            CycleReopening(
                cycle_id=cycle.id,
                member_id=world.member.id,
                period_id=period.id,
                reason="late audit",
                reopened_by_id=world.officer.id,
                closes_at=NOW + dt.timedelta(days=3),
            )
        )
        db_session.commit()
        result = service.commit(
            member=world.member,
            measure=world.hh,
            data=aggregate_csv("2025-03,1,2,,"),
            filename="a.csv",
            actor="x",
        )
        assert result.versions[0].period == "2025-03"
        with pytest.raises(WindowClosedError):
            service.commit(
                member=world.other,
                measure=world.hh,
                data=aggregate_csv("2025-03,1,2,,"),
                filename="a.csv",
                actor="x",
            )
        assert service.window(world.member, world.hh, "2025-03").state is WindowState.REOPENED_UNTIL
        assert "2026-06" in service.open_periods(world.member, world.hh)


class TestRows:
    def test_submit_rows_uses_the_same_checks(self, world, service, db_session):
        with pytest.raises(InvalidSubmissionError) as caught:
            service.submit_rows(
                member=world.member,
                measure=world.hh,
                rows=[{"period": "2026-01", "numerator": 9, "denominator": 5}],
                source=SubmissionSource.API,
                actor="api",
            )
        assert caught.value.problems[0].rule == "numerator_exceeds_denominator"
        assert caught.value.problems[0].row == 1
        result = service.submit_rows(
            member=world.member,
            measure=world.hh,
            rows=[{"period": "2026-01", "numerator": 4, "denominator": 5.0}],
            source=SubmissionSource.API,
            actor="api",
        )
        assert result.versions[0].version == 1
        with pytest.raises(PHIRefusedError):
            service.submit_rows(
                member=world.member,
                measure=world.hh,
                rows=[
                    {
                        "period": "2026-02",
                        "numerator": 4,
                        "denominator": 5,
                        "comment": "pt 555-123-4567",
                    }
                ],
                source=SubmissionSource.FORM,
                actor="x",
            )

    def test_drafts_are_saved_replaced_and_superseded_by_the_submission(
        self, world, service, db_session
    ):
        draft = service.submit_rows(
            member=world.member,
            measure=world.hh,
            rows=[{"period": "2026-04", "numerator": 4, "denominator": None}],
            source=SubmissionSource.FORM,
            actor=world.officer,
            draft=True,
        )
        db_session.commit()
        assert draft.versions[0].status is SubmissionStatus.DRAFT
        again = service.submit_rows(
            member=world.member,
            measure=world.hh,
            rows=[{"period": "2026-04", "numerator": 4, "denominator": 9}],
            source=SubmissionSource.FORM,
            actor=world.officer,
            draft=True,
        )
        db_session.commit()
        assert again.versions[0].submission_id == draft.versions[0].submission_id
        current, saved = service.current_values(world.member, world.hh, "2026-04")
        assert current is None
        assert saved.aggregate.denominator == 9
        final = service.submit_rows(
            member=world.member,
            measure=world.hh,
            rows=[{"period": "2026-04", "numerator": 4, "denominator": 9}],
            source=SubmissionSource.FORM,
            actor=world.officer,
        )
        db_session.commit()
        assert final.versions[0].version == 1
        assert final.versions[0].status is SubmissionStatus.SUBMITTED
        statuses = db_session.scalars(sa.select(Submission.status)).all()
        assert statuses == [SubmissionStatus.SUBMITTED]

    def test_preview_rows_for_mean_and_rate_measures(self, world, service):
        result = service.preview_rows(
            member=world.member,
            measure=world.d2p,
            rows=[{"period": "2026-01", "value": "27.5", "denominator": "1200"}],
        )
        assert result.ok
        result = service.preview_rows(
            member=world.member,
            measure=world.clabsi,
            rows=[{"period": "2026-01", "numerator": "2", "denominator": "0"}],
        )
        assert [p.rule for p in result.errors] == ["zero_denominator"]
