"""The file store contract, on every backend: atomic writes with their hash, verified reads."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from qicollab.storage import (
    DatabaseFileStore,
    FileStoreConfig,
    InvalidKeyError,
    LocalFileStore,
    StoredFileCorruptError,
    StoredFileMissingError,
    file_store,
)
from qicollab.storage.base import CHUNK_SIZE
from qicollab.storage.models import FileChunk, FileRow

REPO = Path(__file__).resolve().parents[2]


def payload(size: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating bytes (so a swapped chunk changes the hash)."""
    return random.Random(seed).randbytes(size)


def test_put_records_the_hash_and_size_and_reads_back(store):
    data = payload(5000)
    stored = store.put("reports/run-1/member-7.pdf", data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == 5000
    assert store.exists("reports/run-1/member-7.pdf")
    assert store.read("reports/run-1/member-7.pdf", sha256=stored.sha256) == data
    reader = store.open("reports/run-1/member-7.pdf")
    assert reader.size_bytes == 5000
    assert b"".join(reader) == data


def test_a_stream_larger_than_a_chunk_is_written_and_read_in_chunks(store):
    data = payload(2 * CHUNK_SIZE + 12345)
    stored = store.put("exports/big.bin", io.BytesIO(data))
    assert (stored.sha256, stored.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    chunks = list(store.open("exports/big.bin", sha256=stored.sha256))
    assert [len(c) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 12345]
    assert b"".join(chunks) == data


def test_an_empty_file_is_a_file(store):
    stored = store.put("uploads/empty.bin", b"")
    assert stored.size_bytes == 0
    assert store.read("uploads/empty.bin", sha256=hashlib.sha256(b"").hexdigest()) == b""


def test_put_replaces_and_delete_removes(store):
    store.put("reports/run-1/summary.pdf", b"first")
    store.put("reports/run-1/summary.pdf", b"second version")
    assert store.read("reports/run-1/summary.pdf") == b"second version"
    assert [(e.key, e.size_bytes) for e in store.list("reports")] == [
        ("reports/run-1/summary.pdf", 14)
    ]
    assert store.delete("reports/run-1/summary.pdf") is True
    assert store.delete("reports/run-1/summary.pdf") is False
    assert not store.exists("reports/run-1/summary.pdf")
    with pytest.raises(StoredFileMissingError):
        store.open("reports/run-1/summary.pdf")


def test_list_takes_a_folder_prefix_literally(store):
    store.put("up_x/a.bin", b"a")
    store.put("upAx/b.bin", b"b")  # '_' is a LIKE wildcard: it must not match here
    store.put("up_xy/c.bin", b"c")  # a longer folder name is not inside "up_x"
    entries = store.list("up_x")
    assert [e.key for e in entries] == ["up_x/a.bin"]
    assert entries[0].stored_at.tzinfo is not None
    assert store.list("nothing-here") == []


@pytest.mark.parametrize(
    "key",
    ["../escape.pdf", "/etc/passwd", ".hidden", "a//b", "a/../b", "a/./b", "", "a/", "a.pdf\n"],
)
def test_keys_that_are_not_plain_relative_paths_are_refused(store, key):
    with pytest.raises(InvalidKeyError):
        store.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.open(key)


def test_a_wrong_expected_hash_is_refused(store):
    store.put("reports/r.pdf", payload(3000))
    with pytest.raises(StoredFileCorruptError):
        store.read("reports/r.pdf", sha256="0" * 64)


def _spoil_one_byte(store, store_engine, key: str, offset: int) -> None:
    """Change one stored byte behind the store's back (disk rot, a bad restore)."""
    if isinstance(store, LocalFileStore):
        with store.path(key).open("r+b") as handle:
            handle.seek(offset)
            byte = handle.read(1)
            handle.seek(offset)
            handle.write(bytes([byte[0] ^ 0xFF]))
        return
    seq, within = divmod(offset, CHUNK_SIZE)
    chunks = FileChunk.__table__
    files = FileRow.__table__
    with store_engine.begin() as connection:
        file_id = connection.scalar(sa.select(files.c.id).where(files.c.key == key))
        where = (chunks.c.file_id == file_id) & (chunks.c.seq == seq)
        data = bytearray(connection.scalar(sa.select(chunks.c.data).where(where)))
        data[within] ^= 0xFF
        connection.execute(chunks.update().where(where).values(data=bytes(data)))


def test_bytes_that_no_longer_match_their_hash_are_refused_before_the_last_chunk(
    store, store_engine
):
    data = payload(2 * CHUNK_SIZE + 100)
    stored = store.put("reports/run-2/member-1.pdf", data)
    _spoil_one_byte(store, store_engine, stored.key, CHUNK_SIZE + 5)
    delivered: list[bytes] = []

    def download() -> None:
        delivered.extend(store.open(stored.key, sha256=stored.sha256))

    with pytest.raises(StoredFileCorruptError, match="SHA-256"):
        download()
    # The client got less than the whole file: the response ends short of Content-Length.
    assert sum(map(len, delivered)) < stored.size_bytes


def test_a_small_spoilt_file_delivers_no_byte_at_all(store, store_engine):
    stored = store.put("reports/small.pdf", b"%PDF-1.7 small report")
    _spoil_one_byte(store, store_engine, stored.key, 3)
    reader = store.open(stored.key, sha256=stored.sha256)
    iterator = iter(reader)
    with pytest.raises(StoredFileCorruptError):
        next(iterator)


class _FailingStream(io.RawIOBase):
    """Two chunks of bytes, then the writer fails (a full disk, a dropped connection)."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("the source went away")
        return payload(size, seed=self.calls)


def test_a_failed_write_leaves_the_previous_file_and_nothing_half_written(
    store, store_engine, tmp_path
):
    old = store.put("reports/run-3/member-2.pdf", b"the previous report")
    with pytest.raises(OSError, match="went away"):
        store.put("reports/run-3/member-2.pdf", _FailingStream())
    assert store.read("reports/run-3/member-2.pdf", sha256=old.sha256) == b"the previous report"
    assert [e.key for e in store.list("reports")] == ["reports/run-3/member-2.pdf"]
    _assert_only_the_old_file_is_stored(store, store_engine)


def _assert_only_the_old_file_is_stored(store, store_engine) -> None:
    if isinstance(store, LocalFileStore):
        leftovers = [p.name for p in store.path("reports/run-3").iterdir()]
        assert [name for name in leftovers if not name.startswith(".")] == ["member-2.pdf"]
        return
    with store_engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(FileRow)) == 1
        assert connection.scalar(sa.select(sa.func.count()).select_from(FileChunk)) == 1


CRASHING_WRITER = """
import sys, time
from pathlib import Path
import sqlalchemy as sa
from qicollab.db import create_engine_from_settings
from qicollab.storage import DatabaseFileStore, LocalFileStore

class Stream:
    calls = 0
    def read(self, size):
        self.calls += 1
        if self.calls == 3:
            print("writing", flush=True)
            time.sleep(600)
        return bytes([self.calls]) * size

backend, where = sys.argv[1], sys.argv[2]
if backend == "local":
    store = LocalFileStore(Path(where))
else:
    store = DatabaseFileStore(create_engine_from_settings({"sqlalchemy.url": where}))
store.put("reports/run-3/member-2.pdf", Stream())
"""


def test_a_writer_killed_mid_write_leaves_no_visible_file(store, store_engine, tmp_path):
    old = store.put("reports/run-3/member-2.pdf", b"the previous report")
    if isinstance(store, LocalFileStore):
        where = str(store.root)
    else:
        where = store_engine.url.render_as_string(hide_password=False)
    with subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, "local" if store_engine is None else "db", where],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
    ) as process:
        try:
            assert process.stdout.readline().strip() == "writing"  # two chunks are in
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    assert store.read("reports/run-3/member-2.pdf", sha256=old.sha256) == b"the previous report"
    assert [e.key for e in store.list("reports")] == ["reports/run-3/member-2.pdf"]
    deadline = time.monotonic() + 20  # PostgreSQL rolls the dead session back on its own time
    while True:
        try:
            _assert_only_the_old_file_is_stored(store, store_engine)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    # The next write of the key goes through (no lock or half-written row left behind).
    store.put("reports/run-3/member-2.pdf", b"rendered again")
    assert store.read("reports/run-3/member-2.pdf") == b"rendered again"


def test_a_reader_sees_the_old_file_or_an_error_never_a_mix(store):
    old = payload(2 * CHUNK_SIZE + 1, seed=1)
    new = payload(2 * CHUNK_SIZE + 1, seed=2)
    store.put("reports/mix.pdf", old)
    reader = iter(store.open("reports/mix.pdf"))
    first = next(reader)
    store.put("reports/mix.pdf", new)
    try:
        rest = b"".join(reader)
    except StoredFileCorruptError:
        assert isinstance(store, DatabaseFileStore)  # replaced midway: the stream stops
    else:
        assert first + rest == old  # the local reader keeps the file it opened
    assert store.read("reports/mix.pdf") == new


def test_concurrent_writers_of_one_key_leave_one_complete_file(store, store_engine):
    results: list[object] = []

    def write(seed: int) -> None:
        try:
            results.append(store.put("reports/race.pdf", payload(CHUNK_SIZE + 7, seed=seed)))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not isinstance(r, Exception) for r in results), results
    final = store.read("reports/race.pdf")
    assert hashlib.sha256(final).hexdigest() in {r.sha256 for r in results}
    assert len(store.list("reports")) == 1
    if store_engine is not None:
        with store_engine.connect() as connection:
            assert connection.scalar(sa.select(sa.func.count()).select_from(FileRow)) == 1


def test_a_bound_store_writes_inside_the_callers_transaction(store, store_engine):
    if store_engine is None:
        pytest.skip("the local folder has no transactions")
    from sqlalchemy.orm import Session

    with Session(store_engine) as session:
        store.bound(session).put("uploads/t.bin", b"kept only on commit")
        session.rollback()
    assert not store.exists("uploads/t.bin")
    with Session(store_engine) as session:
        store.bound(session).put("uploads/t.bin", b"kept only on commit")
        session.commit()
    assert store.read("uploads/t.bin") == b"kept only on commit"


def test_the_setting_chooses_the_backend(tmp_path, monkeypatch):
    settings = {"qicollab.storage": str(tmp_path)}
    assert isinstance(file_store(settings), LocalFileStore)
    engine = sa.create_engine("sqlite://")
    assert isinstance(
        file_store({**settings, "qicollab.file_store": "database"}, engine), DatabaseFileStore
    )
    with pytest.raises(ValueError, match=r"qicollab\.file_store = 's3'"):
        FileStoreConfig.from_settings({**settings, "qicollab.file_store": "s3"})
    with pytest.raises(ValueError, match="needs the database engine"):
        file_store({**settings, "qicollab.file_store": "database"})


def test_the_environment_chooses_the_backend_too(monkeypatch):
    from qicollab.config import apply_defaults

    monkeypatch.setenv("QICOLLAB_FILE_STORE", "database")
    assert FileStoreConfig.from_settings(apply_defaults({})).backend == "database"


def test_a_failed_fsync_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    store = LocalFileStore(tmp_path)
    store.put("reports/a.pdf", b"old")

    def broken_fsync(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.put("reports/a.pdf", b"new")
    assert (tmp_path / "reports/a.pdf").read_bytes() == b"old"
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["a.pdf"]
