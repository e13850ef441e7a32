"""The preview store: tokens are unguessable, tied to a member, and expire."""

from __future__ import annotations

import contextlib
import datetime as dt
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qicollab.storage import LocalFileStore
from qicollab.submissions.errors import SubmissionError
from qicollab.submissions.uploads import UploadStore


def test_put_get_delete(tmp_path):
    store = UploadStore(LocalFileStore(tmp_path))
    token = store.put(member_id=1, measure_code="HH", filename="a.csv", data=b"x,y\n")
    assert len(token) == 32
    assert oct((tmp_path / "uploads" / f"{token}.bin").stat().st_mode)[-3:] == "600"
    stored = store.get(token, member_id=1)
    assert (stored.data, stored.measure_code, stored.filename) == (b"x,y\n", "HH", "a.csv")
    assert store.get(token, member_id=2) is None
    assert store.get("../../etc/passwd", member_id=1) is None
    store.delete(token)
    assert store.get(token, member_id=1) is None


def test_expired_uploads_are_gone(tmp_path):
    store = UploadStore(LocalFileStore(tmp_path), ttl=dt.timedelta(seconds=-1))
    token = store.put(member_id=1, measure_code="HH", filename="a.csv", data=b"1")
    assert store.get(token, member_id=1) is None
    old = UploadStore(LocalFileStore(tmp_path), ttl=dt.timedelta(minutes=5))
    kept = old.put(member_id=1, measure_code="HH", filename="b.csv", data=b"2")
    for path in (tmp_path / "uploads").glob(f"{kept}.*"):
        os.utime(path, (0, 0))
    assert old.purge_expired() == 1
    assert not list((tmp_path / "uploads").iterdir())


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.binary(max_size=600), text=st.text(max_size=300))
def test_service_preview_never_fails_untyped(world, service, db_session, data, text):
    """Through the whole service (periods, windows, history, plan), on random input."""
    for payload, name in ((data, "f.csv"), (text.encode(), "f.csv"), (b"PK\x03\x04" + data, "f")):
        for measure in (world.hh, world.surg):
            with contextlib.suppress(SubmissionError):
                service.preview(member=world.member, measure=measure, data=payload, filename=name)
    db_session.rollback()
