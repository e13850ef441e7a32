"""Pending uploads in the database file store: a web node keeps nothing on its own disk, the
upload is stored in the request's transaction and deleted with the commit."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from qicollab.storage.models import FileRow
from qicollab.submissions.models import Submission
from tests.submissions.conftest import aggregate_csv
from tests.submissions.test_portal import portal, query, upload, world_users

__all__ = ["portal", "world_users"]


@pytest.fixture
def settings(settings):
    """The app's settings with the database file store."""
    return {**settings, "qicollab.file_store": "database"}


def _stored_keys(db_session) -> list[str]:
    return query(db_session, "scalars", sa.select(FileRow.key).order_by(FileRow.key))


def test_an_upload_waits_in_the_database_and_goes_with_its_commit(portal, db_session, settings):
    world, app = portal
    browser = app.as_user("officer")
    page = upload(browser, world, aggregate_csv("2026-01,45,50,,", "2026-02,40,50,,"), "hh.csv")
    token = page.headers["Location"].rsplit("/", 1)[-1]
    assert _stored_keys(db_session) == [f"uploads/{token}.bin", f"uploads/{token}.json"]
    assert not (Path(settings["qicollab.storage"]) / "uploads").exists()
    preview = page.follow()
    assert preview.html.find(id="added").text == "2"
    preview.forms[0].submit().follow()
    assert query(db_session, "scalar", sa.select(sa.func.count()).select_from(Submission)) == 2
    assert _stored_keys(db_session) == []


def test_a_spoilt_pending_upload_is_not_offered(portal, db_session):
    world, app = portal
    browser = app.as_user("officer")
    page = upload(browser, world, aggregate_csv("2026-01,45,50,,"), "hh.csv")
    token = page.headers["Location"].rsplit("/", 1)[-1]
    chunks = sa.table("stored_file_chunks", sa.column("file_id"), sa.column("data"))
    body = sa.select(FileRow.id).where(FileRow.key == f"uploads/{token}.bin").scalar_subquery()
    db_session.execute(
        chunks.update().where(chunks.c.file_id == body).values(data=b"measure_code,changed\n")
    )
    db_session.commit()
    browser.get(page.headers["Location"], status=404)
