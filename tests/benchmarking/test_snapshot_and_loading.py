"""Snapshots (which versions, and the hash) and loading them into frames, on both databases."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from qicollab.benchmarking import loading, snapshot
from qicollab.benchmarking.snapshot import SnapshotError, canonical_settings, snapshot_hash
from qicollab.cycles.models import LearningCycle
from qicollab.db import READ_ONLY_OPTION, get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE, OPEN_CYCLE
from qicollab.measures.models import Measure
from qicollab.members.models import Collaborative, Member
from qicollab.submissions.models import AggregateValue, Submission, SubmissionStatus


def test_hash_is_over_sorted_ids_and_canonical_settings():
    settings = {"trim": 0.1, "funnel_ratio": "shmi", "levels": [0.95, 0.998]}
    reordered = {"levels": [0.95, 0.998], "funnel_ratio": "shmi", "trim": 0.1}
    assert snapshot_hash([3, 1, 2, 2], settings) == snapshot_hash([1, 2, 3], reordered)
    assert canonical_settings(settings) == canonical_settings(reordered)
    assert snapshot_hash([1, 2, 3], settings) != snapshot_hash([1, 2, 4], settings)
    assert snapshot_hash([1, 2, 3], settings) != snapshot_hash([1, 2, 3], {**settings, "trim": 0})
    assert len(snapshot_hash([], {})) == 64


@pytest.fixture
def session(small_engine):
    session = get_session_factory(small_engine)()
    yield session
    session.rollback()
    session.close()


def _cycle(session, code=HISTORY_CYCLE):
    return session.scalar(sa.select(LearningCycle).where(LearningCycle.code == code))


def test_cycle_snapshot_takes_the_current_accepted_version(session, small_demo):
    cycle = _cycle(session)
    first = snapshot.resolve(
        session, collaborative_id=cycle.collaborative_id, settings={}, cycle=cycle
    )
    demo = small_demo.demo
    aggregate_rows = len(demo.aggregate)
    patient_cells = len(demo.patients[["member", "measure", "year"]].drop_duplicates())
    assert len(first) == aggregate_rows + patient_cells
    assert sum(len(ids) for ids in first.by_measure.values()) == len(first)
    # A correction: version 2 accepted, version 1 superseded; a draft v3 is ignored.
    old = session.get(Submission, first.submission_ids[0])
    old.status = SubmissionStatus.SUPERSEDED
    corrected = Submission(
        member_id=old.member_id,
        measure_id=old.measure_id,
        period_id=old.period_id,
        version=2,
        status=SubmissionStatus.ACCEPTED,
        content_hash="x",
        predecessor_id=old.id,
        reason="typo",
    )
    session.add(corrected)
    session.flush()
    session.add(AggregateValue(submission_id=corrected.id, numerator=1, denominator=2))
    draft = Submission(
        member_id=old.member_id,
        measure_id=old.measure_id,
        period_id=old.period_id,
        version=3,
        status=SubmissionStatus.DRAFT,
        content_hash="y",
        predecessor_id=corrected.id,
    )
    session.add(draft)
    session.flush()
    second = snapshot.resolve(
        session, collaborative_id=cycle.collaborative_id, settings={}, cycle=cycle
    )
    assert old.id not in second.submission_ids
    assert corrected.id in second.submission_ids
    assert draft.id not in second.submission_ids
    assert len(second) == len(first)
    assert second.hash != first.hash


def test_open_cycle_periods_are_outside_the_history_snapshot(session):
    history = _cycle(session)
    ids = snapshot.cycle_submission_ids(session, history)
    periods = session.execute(
        sa.select(sa.func.min(Submission.period_id), sa.func.max(Submission.period_id)).where(
            Submission.id.in_([i for i, _ in ids])
        )
    ).one()
    open_cycle = _cycle(session, OPEN_CYCLE)
    assert snapshot.cycle_submission_ids(session, open_cycle) == []  # no 2026 data yet
    assert periods[0] is not None


def test_explicit_lists_are_checked(session):
    cycle = _cycle(session)
    ids = [i for i, _ in snapshot.cycle_submission_ids(session, cycle)][:5]
    chosen = snapshot.resolve(
        session, collaborative_id=cycle.collaborative_id, settings={}, submission_ids=ids
    )
    assert chosen.submission_ids == tuple(sorted(ids))
    with pytest.raises(SnapshotError, match="unknown"):
        snapshot.check_explicit_ids(session, cycle.collaborative_id, [10**9])
    with pytest.raises(SnapshotError, match="another collaborative"):
        snapshot.check_explicit_ids(session, cycle.collaborative_id + 1000, ids)
    with pytest.raises(SnapshotError, match="at least one"):
        snapshot.check_explicit_ids(session, cycle.collaborative_id, [])
    original = session.get(Submission, ids[0])
    twin = Submission(
        member_id=original.member_id,
        measure_id=original.measure_id,
        period_id=original.period_id,
        version=2,
        status=SubmissionStatus.SUBMITTED,
        content_hash="z",
        predecessor_id=original.id,
    )
    session.add(twin)
    session.flush()
    with pytest.raises(SnapshotError, match="same period"):
        snapshot.check_explicit_ids(session, cycle.collaborative_id, [ids[0], twin.id])
    twin.status = SubmissionStatus.DRAFT
    session.flush()
    with pytest.raises(SnapshotError, match="drafts"):
        snapshot.check_explicit_ids(session, cycle.collaborative_id, [twin.id])


def _reader(engine):
    return engine.execution_options(**{READ_ONLY_OPTION: True}).connect()


def test_patient_rows_load_exactly_as_generated(small_engine, small_demo):
    demo = small_demo.demo
    with get_session_factory(small_engine)() as session:
        cycle = _cycle(session)
        snap = snapshot.resolve(
            session, collaborative_id=cycle.collaborative_id, settings={}, cycle=cycle
        )
        measure = session.scalar(sa.select(Measure).where(Measure.code == "SURG-MORT"))
        members = {m.id: m for m in session.scalars(sa.select(Member))}
        spec = next(m.risk_model for m in demo.measures if m.code == "SURG-MORT")
    with _reader(small_engine) as connection, connection.begin():
        frame = loading.load_patients(connection, snap.by_measure[measure.id], spec)
    expected = demo.patients[demo.patients["measure"] == "SURG-MORT"]
    assert len(frame) == len(expected)
    frame["member"] = frame["member_id"].map({i: m.code for i, m in members.items()})
    got = frame.sort_values(["member", "event_year", "sequence"]).reset_index(drop=True)
    want = expected.sort_values(["member", "year", "sequence"]).reset_index(drop=True)
    assert (got["outcome"].to_numpy() == want["outcome"].to_numpy()).all()
    for covariate in spec.covariates:
        got_values = got[covariate.name].astype(str if covariate.levels else float).to_numpy()
        want_values = want[covariate.name].astype(str if covariate.levels else float).to_numpy()
        assert (got_values == want_values).all(), covariate.name
    assert isinstance(got["asa_class"].dtype, pd.CategoricalDtype)
    assert list(got["asa_class"].cat.categories) == ["1", "2", "3", "4", "5"]
    # Months only for members with a data use agreement.
    dua = got["member_id"].map({i: m.has_data_use_agreement for i, m in members.items()})
    assert got.loc[dua, "event_month"].notna().all()
    assert got.loc[~dua, "event_month"].isna().all()
    # The order is member, period, sequence: stable for refits.
    ordered = frame.sort_values(["member_id", "period_id", "sequence"], kind="stable")
    assert (ordered.index == frame.index).all()


def test_patient_rows_load_without_covariates(small_engine, small_demo):
    """A model with no covariates reads no risk factors; the records and order are the same."""
    import dataclasses

    with get_session_factory(small_engine)() as session:
        cycle = _cycle(session)
        snap = snapshot.resolve(
            session, collaborative_id=cycle.collaborative_id, settings={}, cycle=cycle
        )
        measure = session.scalar(sa.select(Measure).where(Measure.code == "SURG-MORT"))
    spec = next(m.risk_model for m in small_demo.demo.measures if m.code == "SURG-MORT")
    bare = dataclasses.replace(spec, covariates=())
    with _reader(small_engine) as connection, connection.begin():
        full = loading.load_patients(connection, snap.by_measure[measure.id], spec)
        frame = loading.load_patients(connection, snap.by_measure[measure.id], bare)
    assert list(frame.columns) == list(loading.PATIENT_COLUMNS)
    pd.testing.assert_frame_equal(frame, full[list(loading.PATIENT_COLUMNS)])


def test_aggregate_values_load_exactly_as_generated(small_engine, small_demo):
    demo = small_demo.demo
    with get_session_factory(small_engine)() as session:
        cycle = _cycle(session)
        snap = snapshot.resolve(
            session, collaborative_id=cycle.collaborative_id, settings={}, cycle=cycle
        )
        hh = session.scalar(sa.select(Measure).where(Measure.code == "HH"))
    with _reader(small_engine) as connection, connection.begin():
        frame = loading.load_aggregate(connection, snap.submission_ids, [hh.id])
        nothing = loading.load_aggregate(connection, [], [hh.id])
    expected = demo.aggregate[demo.aggregate["measure"] == "HH"]
    assert len(frame) == len(expected)
    assert frame["numerator"].sum() == expected["numerator"].sum()
    assert frame["denominator"].sum() == expected["denominator"].sum()
    assert frame["value"].isna().all()
    assert frame["period_start"].min() == pd.Timestamp(dt.date(2023, 1, 1))
    assert (frame["granularity"] == "month").all()
    assert nothing.empty
    assert list(nothing.columns) == list(loading.AGGREGATE_COLUMNS)


def test_tolerant_json_path():
    from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec

    spec = RiskModelSpec(
        outcome="y",
        family=OutcomeFamily.BINOMIAL,
        covariates=(
            Covariate("bmi", CovariateType.NUMERIC),
            Covariate("asa", CovariateType.CATEGORICAL, levels=("1", "2"), reference="1"),
        ),
    )
    lines = b'{"bmi":NaN,"asa":2}\n{"bmi":22.5,"asa":"1"}\n'
    frame = loading._parse_lines(lines, spec)
    assert np.isnan(frame["bmi"].iloc[0])
    assert list(frame["asa"]) == ["2", "1"]


def test_arrow_batches_keep_categoricals_compact_and_drop_unknown_levels():
    """The fast path hands pandas dictionary-encoded strings: the spec's levels, in its order,
    with values outside them missing, as the tolerant path gives."""
    from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec

    spec = RiskModelSpec(
        outcome="y",
        family=OutcomeFamily.BINOMIAL,
        covariates=(
            Covariate("bmi", CovariateType.NUMERIC),
            Covariate("asa", CovariateType.CATEGORICAL, levels=("1", "2", "3"), reference="1"),
        ),
    )
    lines = b"".join(
        b'{"bmi":%s,"asa":%s}\n' % (bmi, asa)
        for bmi, asa in [(b"22.5", b'"3"'), (b"30", b'"9"'), (b"null", b'"1"'), (b"18", b"null")]
    )
    table = loading._parse_lines(lines, spec)
    assert isinstance(table, pa.Table)
    frame = loading._to_frame(table)
    for column in loading.PATIENT_COLUMNS:
        frame[column] = 1
    frame = loading._finish_patients(frame, spec)
    assert list(frame["asa"].cat.categories) == ["1", "2", "3"]
    assert frame["asa"].iloc[[0, 2]].tolist() == ["3", "1"]
    assert frame["asa"].isna().tolist() == [False, True, False, True]
    assert np.isnan(frame["bmi"].iloc[2])
    assert frame["bmi"].dtype == np.float64


def test_snapshot_needs_something(session):
    collaborative = session.scalar(sa.select(Collaborative))
    with pytest.raises(SnapshotError):
        snapshot.resolve(session, collaborative_id=collaborative.id, settings={})
