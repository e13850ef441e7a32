"""The file store's contract: keys, what a write records, and a reader that verifies as it streams.

Generated files (rendered reports, pending uploads) are named by a *key*, a relative path such
as ``reports/run-3/member-12.pdf``. A write records the file's SHA-256 and size atomically with
the bytes; a reader yields the bytes in chunks and refuses (raises :class:`StoredFileCorrupt`)
when they do not match the recorded or expected hash. The last chunk is held back until the
hash is checked, so a client never receives a complete file that failed the check: a served
response either carries exactly the recorded bytes or ends short of its ``Content-Length``.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Generator, Iterable, Iterator
from typing import BinaryIO, Self

#: Bytes per read, write and database chunk: large enough for few round trips, small enough
#: that a writer or a download holds at most this much of a file in memory.
CHUNK_SIZE = 1024 * 1024

#: Path segments of letters, digits, ``.``, ``_`` and ``-``, never starting with a dot (no
#: ``..``, no hidden temporary files), separated by single slashes.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")

Source = bytes | BinaryIO


class InvalidKeyError(ValueError):
    """A key that is not a plain relative path."""


class StoredFileMissingError(FileNotFoundError):
    """No file is stored under the key (or it was deleted)."""


class StoredFileCorruptError(RuntimeError):
    """The stored bytes do not match their recorded (or expected) hash or size."""


def check_key(key: str) -> str:
    """``key`` itself when it is a plain relative path; raises :class:`InvalidKeyError`."""
    if len(key) > 500 or not KEY_PATTERN.fullmatch(key):
        msg = f"not a valid file store key: {key!r}"
        raise InvalidKeyError(msg)
    return key


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFile:
    """What a write recorded: the key, the SHA-256 (hex) and the size of the bytes."""

    key: str
    sha256: str
    size_bytes: int

    def to_json(self) -> dict[str, str | int]:
        """A JSON-safe dictionary (job results, task messages)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Self:
        """The inverse of :meth:`to_json`."""
        return cls(str(data["key"]), str(data["sha256"]), int(str(data["size_bytes"])))


@dataclasses.dataclass(frozen=True, slots=True)
class StoredEntry:
    """A file found by :meth:`FileStore.list`: its key, size and when it was stored (UTC)."""

    key: str
    size_bytes: int
    stored_at: dt.datetime


def source_chunks(source: Source) -> Iterator[bytes]:
    """The bytes of ``source`` in chunks of at most :data:`CHUNK_SIZE`, read once."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])
        return
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


class FileReader:
    """An open stored file: iterate for verified chunks (a WSGI ``app_iter``), or :meth:`read`.

    ``sha256`` is the hash the bytes must have (recorded by the store, or given by the caller);
    when neither is known only the size is checked.
    """

    def __init__(
        self,
        key: str,
        size_bytes: int,
        sha256: str | None,
        chunks: Iterable[bytes],
        *,
        close: tuple[object, ...] = (),
    ) -> None:
        self.key = key
        self.size_bytes = size_bytes
        self.sha256 = sha256
        self._chunks = chunks
        self._closeables = close

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        held: bytes | None = None
        try:
            for chunk in self._chunks:
                digest.update(chunk)
                size += len(chunk)
                if size > self.size_bytes:
                    break
                if held:
                    yield held
                held = chunk
            self._verify(size, digest.hexdigest())
            if held:
                yield held
        finally:
            self.close()

    def _verify(self, size: int, sha256: str) -> None:
        if size != self.size_bytes:
            msg = f"{self.key}: {size} bytes stored where {self.size_bytes} were recorded"
            raise StoredFileCorruptError(msg)
        if self.sha256 is not None and sha256 != self.sha256:
            msg = f"{self.key}: SHA-256 {sha256} does not match the recorded {self.sha256}"
            raise StoredFileCorruptError(msg)

    def started(self) -> Iterator[bytes]:
        """The chunks for a WSGI ``app_iter``, the first already read: a file of up to one
        chunk is verified (or refused) before the response starts."""
        chunks = iter(self)
        first = next(chunks, None)
        return _chained(first, chunks)

    def read(self) -> bytes:
        """All the bytes, verified."""
        return b"".join(self)

    def close(self) -> None:
        """Release the open file or connection (WSGI servers call this after the response)."""
        for closeable in self._closeables:
            getattr(closeable, "close", lambda: None)()
        self._closeables = ()


def _chained(first: bytes | None, rest: Generator[bytes]) -> Iterator[bytes]:
    try:
        if first is not None:
            yield first
        yield from rest
    finally:
        rest.close()


class FileStore(abc.ABC):
    """Where generated files live: a local folder or the database (see :mod:`qicollab.storage`)."""

    #: The ``qicollab.file_store`` setting that selects this backend.
    backend: str

    @abc.abstractmethod
    def put(self, key: str, source: Source) -> StoredFile:
        """Store ``source`` under ``key`` atomically, replacing any previous file.

        Readers see the previous file or the new one, never a part; a write that fails (or a
        process killed mid-write) leaves the previous file as it was.
        """

    @abc.abstractmethod
    def open(self, key: str, *, sha256: str | None = None) -> FileReader:
        """A reader of the file; ``sha256``, when given, is the hash the caller recorded.

        Raises :class:`StoredFileMissingError` when there is none, and
        :class:`StoredFileCorruptError` at once when the store's recorded hash already differs.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a complete file is stored under ``key``."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the file; False when there was none."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[StoredEntry]:
        """Every complete file whose key starts with the folder ``prefix`` (e.g. ``uploads``)."""

    def read(self, key: str, *, sha256: str | None = None) -> bytes:
        """The whole file, verified (for small files such as pending uploads)."""
        return self.open(key, sha256=sha256).read()
