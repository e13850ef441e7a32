"""Rendering a run's reports: recorded hashes, atomic files, failures that keep the old report,
the job (one task per report) and the command."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from pypdf import PdfReader

from qicollab.cli import cli
from qicollab.jobs.local import run_here
from qicollab.jobs.models import JobStatus
from qicollab.jobs.services import JobService
from qicollab.members.models import Member
from qicollab.reporting import pdf as pdf_module
from qicollab.reporting import rendering
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.rendering import JOB_KIND, ReportRenderer
from qicollab.storage.local import LocalFileStore


def _reports(db_session) -> list[Report]:
    query = sa.select(Report).order_by(Report.kind, Report.member_id)
    rows = list(db_session.scalars(query.execution_options(populate_existing=True)))
    db_session.commit()
    return rows


@pytest.fixture
def session_factory(engine):
    from qicollab.db import get_session_factory

    return get_session_factory(engine)


@pytest.fixture
def rendered_once(world, settings, session_factory, db_session):
    """Two members' reports and the blinded summary, rendered in this process."""
    renderer = ReportRenderer(session_factory, settings)
    summary = renderer.render_run(
        world.run_id,
        member_ids=[world.member, world.other],
        kinds=[ReportKind.MEMBER, ReportKind.BLINDED_SUMMARY],
    )
    return summary, _reports(db_session)


# --- batch rendering -----------------------------------------------------------------------------


def test_every_planned_report_is_rendered(rendered_once):
    summary, _rows = rendered_once
    assert (len(summary.rendered), summary.failed) == (3, [])


def test_each_report_row_records_the_files_hash(rendered_once, settings):
    _summary, rows = rendered_once
    storage = Path(settings["qicollab.storage"])
    assert all(
        hashlib.sha256((storage / row.path).read_bytes()).hexdigest() == row.sha256 for row in rows
    )


def test_each_report_row_records_the_files_size(rendered_once, settings):
    _summary, rows = rendered_once
    storage = Path(settings["qicollab.storage"])
    assert all((storage / row.path).stat().st_size == row.size_bytes for row in rows)


def test_reports_are_written_under_the_runs_folder_by_id_and_hash(rendered_once, world):
    _summary, rows = rendered_once
    folder = f"reports/run-{world.run_id}"
    names = {
        ReportKind.BLINDED_SUMMARY: "blinded-summary",
        world.member: f"member-{world.member}",
        world.other: f"member-{world.other}",
    }
    assert {row.path for row in rows} == {
        f"{folder}/{names[row.member_id or row.kind]}.{row.sha256[:16]}.pdf" for row in rows
    }
    assert rendering.versioned_key(f"{folder}/x.pdf", "ab" * 32) == f"{folder}/x.{'ab' * 8}.pdf"


def test_rendering_again_replaces_the_file_and_reads_names_afresh(
    world, settings, session_factory, db_session
):
    """A renderer kept between batches (as a worker is) prints a member renamed in between,
    under a new key; the file the row named before is deleted once the new row commits."""
    storage = Path(settings["qicollab.storage"])
    renderer = ReportRenderer(session_factory, settings)
    batch = {"member_ids": [world.member], "kinds": [ReportKind.MEMBER]}
    renderer.render_run(world.run_id, **batch)
    old = next(r.path for r in _reports(db_session) if r.member_id == world.member)
    db_session.get(Member, world.member).name = "Hospital Renamed Meanwhile"
    db_session.commit()
    renderer.render_run(world.run_id, **batch)
    new = next(r for r in _reports(db_session) if r.member_id == world.member)
    assert new.path != old
    assert not (storage / old).exists()
    data = (storage / new.path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == new.sha256
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages[:1])
    assert "Hospital Renamed Meanwhile" in text


def test_an_identical_rendering_keeps_its_key_and_file(
    rendered_once, world, settings, session_factory, db_session
):
    _summary, before = rendered_once
    old = next((r.path, r.sha256) for r in before if r.kind is ReportKind.BLINDED_SUMMARY)
    ReportRenderer(session_factory, settings).render_run(
        world.run_id, kinds=[ReportKind.BLINDED_SUMMARY]
    )
    new = next(r for r in _reports(db_session) if r.kind is ReportKind.BLINDED_SUMMARY)
    assert (new.path, new.sha256) == old
    assert (Path(settings["qicollab.storage"]) / new.path).exists()


def test_a_failed_render_keeps_the_previous_file_and_row(
    rendered_once, world, settings, session_factory, db_session, monkeypatch
):
    _summary, before = rendered_once
    row = next(r for r in before if r.member_id == world.member)
    path = Path(settings["qicollab.storage"]) / row.path
    old_bytes, old_hash = path.read_bytes(), row.sha256

    def fail_for_member(task):
        if task.spec.member_id == world.member:
            raise RuntimeError("layout exploded")

    monkeypatch.setattr(rendering, "RENDER_HOOK", fail_for_member)
    renderer = ReportRenderer(session_factory, settings)
    summary = renderer.render_run(
        world.run_id, member_ids=[world.member, world.other], kinds=[ReportKind.MEMBER]
    )
    after = next(r for r in _reports(db_session) if r.member_id == world.member)
    assert [o.task.spec.member_id for o in summary.failed] == [world.member]
    assert (path.read_bytes(), after.sha256) == (old_bytes, old_hash)


def test_a_failure_after_the_file_is_written_keeps_the_previous_file_and_row(
    rendered_once, world, settings, session_factory, db_session, monkeypatch
):
    """The new file is on disk before its row is recorded: a failure there (here the flush)
    must leave the row naming the previous file, with the bytes its hash records, and take the
    new file away again."""
    _summary, before = rendered_once
    path, sha256 = next((r.path, r.sha256) for r in before if r.member_id == world.member)
    storage = Path(settings["qicollab.storage"])
    old_bytes = (storage / path).read_bytes()
    db_session.get(Member, world.member).name = "Hospital Renamed Meanwhile"  # other bytes
    db_session.commit()
    written: list[str] = []
    put = LocalFileStore.put

    def recording_put(self, key, source):
        written.append(key)
        return put(self, key, source)

    def refuse_report_rows(session, _context, _instances):
        if any(isinstance(row, Report) for row in (*session.new, *session.dirty)):
            raise sa.exc.OperationalError("UPDATE reports", {}, Exception("database is locked"))

    monkeypatch.setattr(LocalFileStore, "put", recording_put)
    sa.event.listen(sa.orm.Session, "before_flush", refuse_report_rows)
    try:
        summary = ReportRenderer(session_factory, settings).render_run(
            world.run_id, member_ids=[world.member], kinds=[ReportKind.MEMBER]
        )
    finally:
        sa.event.remove(sa.orm.Session, "before_flush", refuse_report_rows)
    monkeypatch.undo()
    after = next(r for r in _reports(db_session) if r.member_id == world.member)
    assert len(summary.failed) == 1
    assert len(written) == 1
    assert written[0] != path  # the new file was written, under its own key
    assert (after.path, after.sha256) == (path, sha256)
    assert (storage / path).read_bytes() == old_bytes
    assert hashlib.sha256(old_bytes).hexdigest() == sha256
    assert not (storage / written[0]).exists()


def test_a_failure_while_writing_keeps_the_previous_file(
    rendered_once, world, settings, session_factory, monkeypatch
):
    _summary, before = rendered_once
    row = next(r for r in before if r.kind is ReportKind.BLINDED_SUMMARY)
    path = Path(settings["qicollab.storage"]) / row.path
    old_bytes = path.read_bytes()

    def broken_replace(self, target):
        raise OSError("rename failed")

    monkeypatch.setattr(Path, "replace", broken_replace)
    renderer = ReportRenderer(session_factory, settings)
    summary = renderer.render_run(world.run_id, kinds=[ReportKind.BLINDED_SUMMARY])
    assert len(summary.failed) == 1
    assert path.read_bytes() == old_bytes
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def _render_job(settings, engine, jobs: JobService, world, member_ids, kinds) -> int:
    """A report batch job run in this process through the per-task dispatch."""
    params = {"run_id": world.run_id, "member_ids": member_ids, "kinds": [k.value for k in kinds]}
    job_id = jobs.create(JOB_KIND, params=params, collaborative_id=world.collaborative_id).id
    with run_here(settings, job_id, processes=0, engine=engine):
        pass
    return job_id


def test_a_failed_report_fails_the_job_but_records_the_others(
    world, settings, engine, session_factory, db_session, monkeypatch
):
    def fail_for_other(task):
        if task.spec.member_id == world.other:
            raise RuntimeError("boom")

    monkeypatch.setattr(rendering, "RENDER_HOOK", fail_for_other)
    jobs = JobService(session_factory)
    job_id = _render_job(
        settings, engine, jobs, world, [world.member, world.other], [ReportKind.MEMBER]
    )
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert f"member-{world.other}.pdf" in (state.error or "")
    assert [r.member_id for r in _reports(db_session)] == [world.member]


def test_the_job_reports_progress_to_the_end(world, settings, engine, session_factory):
    jobs = JobService(session_factory)
    job_id = _render_job(
        settings,
        engine,
        jobs,
        world,
        [world.member],
        [ReportKind.MEMBER, ReportKind.BLINDED_SUMMARY],
    )
    state = jobs.get(job_id)
    assert state.status is JobStatus.SUCCEEDED
    assert (state.done, state.total) == (2, 2)
    assert state.tasks is not None
    assert (state.tasks.done, state.tasks.total) == (2, 2)


def test_a_run_that_did_not_succeed_cannot_be_rendered(world, settings, session_factory):
    renderer = ReportRenderer(session_factory, settings)
    with pytest.raises(rendering.RenderError):
        renderer.render_run(world.run_id + 100)


@pytest.mark.parametrize("workers", ["0", "1"])  # in this process; one worker process for it
def test_the_command_renders_a_run(world, settings, monkeypatch, workers):
    monkeypatch.setenv("DATABASE_URL", settings["sqlalchemy.url"])
    monkeypatch.setenv("QICOLLAB_STORAGE", settings["qicollab.storage"])
    monkeypatch.chdir(Path(settings["qicollab.storage"]).parent)
    result = CliRunner().invoke(
        cli,
        [
            "reports",
            "render",
            "--run",
            str(world.run_id),
            "--workers",
            workers,
            "--member",
            str(world.member),
            "--members-only",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 report(s) written" in result.output


def test_the_command_refuses_an_unknown_run(world, settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", settings["sqlalchemy.url"])
    monkeypatch.setenv("QICOLLAB_STORAGE", settings["qicollab.storage"])
    monkeypatch.chdir(Path(settings["qicollab.storage"]).parent)
    result = CliRunner().invoke(cli, ["reports", "render", "--run", "999", "--workers", "0"])
    assert result.exit_code != 0
    assert "not a succeeded run" in result.output


def test_warm_up_imports_and_lays_out_once():
    pdf_module.warm_up()
