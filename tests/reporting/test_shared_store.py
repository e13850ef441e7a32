"""Reports in the database file store: rendered by one process, served by another machine's
web app (a different storage folder), with the recorded hash, and refused when spoilt."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from pyramid.csrf import CookieCSRFStoragePolicy

from qicollab import make_config
from qicollab.reporting.models import Report, ReportKind
from qicollab.security import IDENTITY_LOADER_KEY
from qicollab.storage.models import FileChunk, FileRow
from tests.reporting.conftest import Portal, _loader

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rendered_elsewhere(world, settings, tmp_path, db_session) -> Report:
    """The member's report rendered by ``qicollab reports render`` in its own process, with
    its own storage folder and the database file store."""
    worker_folder = tmp_path / "worker-storage"
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": settings["sqlalchemy.url"],
        "QICOLLAB_STORAGE": str(worker_folder),
        "QICOLLAB_FILE_STORE": "database",
    }
    command = [sys.executable, "-m", "qicollab", "reports", "render", "--run", str(world.run_id)]
    command += ["--workers", "0", "--member", str(world.member), "--members-only"]
    done = subprocess.run(
        command,
        check=False,
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (worker_folder / "reports").exists()  # nothing on the worker's disk
    report = db_session.scalars(sa.select(Report).where(Report.kind == ReportKind.MEMBER)).one()
    db_session.commit()
    return report


@pytest.fixture
def web(settings, engine, world, tmp_path) -> Portal:
    """The portal with yet another storage folder and the database file store."""
    config = make_config(
        {
            **settings,
            "qicollab.storage": str(tmp_path / "web-storage"),
            "qicollab.file_store": "database",
            "db.engine": engine,
        }
    )
    config.registry[IDENTITY_LOADER_KEY] = _loader
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    return Portal(config.make_wsgi_app(), world)


def test_a_web_node_serves_a_report_another_process_rendered(rendered_elsewhere, web, tmp_path):
    response = web.as_user("officer").get(f"/reports/{rendered_elsewhere.id}/download")
    assert response.body.startswith(b"%PDF")
    assert hashlib.sha256(response.body).hexdigest() == rendered_elsewhere.sha256
    assert len(response.body) == rendered_elsewhere.size_bytes == response.content_length
    digest = base64.b64encode(bytes.fromhex(rendered_elsewhere.sha256)).decode()
    assert response.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert not (tmp_path / "web-storage" / "reports").exists()


def test_a_report_whose_bytes_no_longer_match_is_refused(rendered_elsewhere, web, db_session):
    chunk = db_session.scalars(
        sa.select(FileChunk)
        .join(FileRow, FileRow.id == FileChunk.file_id)
        .where(FileRow.key == rendered_elsewhere.path, FileChunk.seq == 0)
    ).one()
    chunk.data = chunk.data[:-1] + bytes([chunk.data[-1] ^ 0xFF])
    db_session.commit()
    response = web.as_user("officer").get(
        f"/reports/{rendered_elsewhere.id}/download", expect_errors=True
    )
    assert response.status_int == 500
    assert b"%PDF" not in response.body


def test_a_report_row_whose_hash_differs_from_the_stored_file_is_refused(
    rendered_elsewhere, web, db_session
):
    db_session.execute(
        sa.update(Report).where(Report.id == rendered_elsewhere.id).values(sha256="0" * 64)
    )
    db_session.commit()
    response = web.as_user("officer").get(
        f"/reports/{rendered_elsewhere.id}/download", expect_errors=True
    )
    assert response.status_int == 500
    assert b"%PDF" not in response.body
