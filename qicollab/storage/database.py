"""The database backend: files as rows of chunks, so every machine that reaches the database
reaches the files (web nodes and workers share nothing else).

A write inserts the file under a NULL key, streams its chunks in, records the hash and size,
and only then gives the row its key, replacing the previous file of that key: all in one
transaction, so readers see the old file or the new one and a writer killed mid-write leaves
nothing behind (the transaction rolls back). A reader looks the row up once and fetches each
chunk by its own short query: no transaction stays open while a slow client downloads, and if
the file is replaced or deleted midway the missing chunk stops the stream (never mixed bytes).

Bound to a session (:meth:`DatabaseFileStore.bound`), the store works inside that session's
transaction instead: a pending upload is stored, or deleted, together with the request's other
changes (and SQLite, which has one writer at a time, never waits on itself).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qicollab.db import READ_ONLY_OPTION, utcnow
from qicollab.storage.base import (
    FileReader,
    FileStore,
    Source,
    StoredEntry,
    StoredFile,
    StoredFileCorruptError,
    StoredFileMissingError,
    check_key,
    source_chunks,
)
from qicollab.storage.models import FileChunk, FileRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

FILES = FileRow.__table__
CHUNKS = FileChunk.__table__

#: Two writers of one key at once on PostgreSQL: the later one retries its swap this often.
SWAP_ATTEMPTS = 5


class DatabaseFileStore(FileStore):
    """Files in the ``stored_files`` / ``stored_file_chunks`` tables of the application database."""

    backend = "database"

    def __init__(
        self,
        engine: Engine,
        *,
        session: Session | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.session = session
        self.on_write = on_write

    def bound(
        self, session: Session, *, on_write: Callable[[], None] | None = None
    ) -> DatabaseFileStore:
        """The same store working inside ``session``'s transaction; ``on_write`` is called
        after each write (a transaction manager must learn that the session changed)."""
        return DatabaseFileStore(self.engine, session=session, on_write=on_write)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        if self.session is not None:
            yield self.session.connection()
            if self.on_write is not None:
                self.on_write()
            return
        with self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if self.session is not None:
            yield self.session.connection()
            return
        with self.engine.execution_options(**{READ_ONLY_OPTION: True}).connect() as connection:
            yield connection

    @contextlib.contextmanager
    def _savepoint(self, connection: sa.Connection) -> Iterator[None]:
        if self.session is not None:
            with self.session.begin_nested():
                yield
        else:
            with connection.begin_nested():
                yield

    def put(self, key: str, source: Source) -> StoredFile:
        check_key(key)
        with self._writing() as connection:
            inserted = connection.execute(
                FILES.insert().values(
                    key=None, sha256="", size_bytes=0, chunk_count=0, stored_at=utcnow()
                )
            )
            file_id = inserted.inserted_primary_key[0]
            digest = hashlib.sha256()
            size = count = 0
            for chunk in source_chunks(source):
                connection.execute(CHUNKS.insert().values(file_id=file_id, seq=count, data=chunk))
                digest.update(chunk)
                size += len(chunk)
                count += 1
            connection.execute(
                FILES.update()
                .where(FILES.c.id == file_id)
                .values(sha256=digest.hexdigest(), size_bytes=size, chunk_count=count)
            )
            self._swap_in(connection, key, file_id)
        return StoredFile(key, digest.hexdigest(), size)

    def _swap_in(self, connection: sa.Connection, key: str, file_id: int) -> None:
        """Replace the file of ``key`` by the new row (a savepoint retried when a concurrent
        writer of the same key committed first)."""
        for attempt in range(SWAP_ATTEMPTS):
            try:
                with self._savepoint(connection):
                    _delete(connection, key)
                    connection.execute(
                        FILES.update()
                        .where(FILES.c.id == file_id)
                        .values(key=key, stored_at=utcnow())
                    )
            except IntegrityError:
                if attempt == SWAP_ATTEMPTS - 1:
                    raise
            else:
                return

    def open(self, key: str, *, sha256: str | None = None) -> FileReader:
        check_key(key)
        with self._reading() as connection:
            row = connection.execute(
                sa.select(
                    FILES.c.id, FILES.c.sha256, FILES.c.size_bytes, FILES.c.chunk_count
                ).where(FILES.c.key == key)
            ).first()
        if row is None:
            raise StoredFileMissingError(key)
        if sha256 is not None and sha256 != row.sha256:
            msg = f"{key}: the stored file's SHA-256 {row.sha256} is not the expected {sha256}"
            raise StoredFileCorruptError(msg)
        return FileReader(
            key, row.size_bytes, row.sha256, self._chunks(key, row.id, row.chunk_count)
        )

    def _chunks(self, key: str, file_id: int, count: int) -> Iterator[bytes]:
        for seq in range(count):
            with self._reading() as connection:
                data = connection.scalar(
                    sa.select(CHUNKS.c.data).where(CHUNKS.c.file_id == file_id, CHUNKS.c.seq == seq)
                )
            if data is None:
                msg = f"{key}: replaced or deleted while being read (chunk {seq} of {count})"
                raise StoredFileCorruptError(msg)
            yield bytes(data)

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._reading() as connection:
            return connection.scalar(sa.select(FILES.c.id).where(FILES.c.key == key)) is not None

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._writing() as connection:
            return _delete(connection, key)

    def list(self, prefix: str) -> list[StoredEntry]:
        check_key(prefix)
        with self._reading() as connection:
            rows = connection.execute(
                sa.select(FILES.c.key, FILES.c.size_bytes, FILES.c.stored_at)
                .where(FILES.c.key.startswith(f"{prefix}/", autoescape=True))
                .order_by(FILES.c.key)
            ).all()
        return [StoredEntry(row.key, row.size_bytes, row.stored_at) for row in rows]


def _delete(connection: sa.Connection, key: str) -> bool:
    """Delete the file of ``key`` and its chunks; whether there was one.

    The file's row is locked first, then its chunks are deleted, then the row: the order in
    which PostgreSQL's cascade from the row takes them. Deleting the chunks first (by a
    subquery on the key) deadlocked two writers of one key: one held the chunks and waited
    for the row, the other held the row and its cascade waited for the chunks."""
    file_id = connection.scalar(sa.select(FILES.c.id).where(FILES.c.key == key).with_for_update())
    if file_id is None:
        return False
    connection.execute(CHUNKS.delete().where(CHUNKS.c.file_id == file_id))
    connection.execute(FILES.delete().where(FILES.c.id == file_id))
    return True
