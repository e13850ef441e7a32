"""The local-folder backend: files under the storage folder, each key a relative path.

A write goes to a hidden temporary file in the target folder (same file system), is fsynced,
swapped in with ``os.replace`` and the folder fsynced, so the rename survives a crash. A reader
keeps the file it opened even if a newer version replaces it meanwhile. Temporary files start
with a dot, which no key may, so a half-written file can never be opened or listed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
from pathlib import Path

from qicollab.storage.base import (
    CHUNK_SIZE,
    FileReader,
    FileStore,
    Source,
    StoredEntry,
    StoredFile,
    StoredFileMissingError,
    check_key,
    source_chunks,
)

#: Folders hold member reports and uploads: owner-only.
FOLDER_MODE = 0o700


class LocalFileStore(FileStore):
    """Files in a folder of this machine (the default; one machine, or a shared mount)."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        """Where ``key`` lives on disk."""
        return self.root / check_key(key)

    def put(self, key: str, source: Source) -> StoredFile:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(handle, "wb") as stream:
                for chunk in source_chunks(source):
                    stream.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            Path(temporary).replace(path)  # os.replace: atomic within one file system
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(temporary).unlink()
            raise
        _fsync_folder(path.parent)
        return StoredFile(key, digest.hexdigest(), size)

    def open(self, key: str, *, sha256: str | None = None) -> FileReader:
        try:
            handle = self.path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StoredFileMissingError(key) from None
        size = os.fstat(handle.fileno()).st_size
        return FileReader(
            key, size, sha256, iter(lambda: handle.read(CHUNK_SIZE), b""), close=(handle,)
        )

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[StoredEntry]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        entries = []
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted while listing
                continue
            if path.is_file():
                stored_at = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                entries.append(StoredEntry(relative, stat.st_size, stored_at))
        return entries


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
