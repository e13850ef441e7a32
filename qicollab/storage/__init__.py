"""Generated files (rendered reports, pending uploads) behind one interface, two backends.

``qicollab.file_store`` (or ``QICOLLAB_FILE_STORE``) chooses where they live:

- ``local`` (default): the storage folder of the machine (``qicollab.storage``), as always;
  fine for one machine, or several sharing one mounted folder.
- ``database``: tables of the application database, so web nodes and workers on different
  machines share nothing but PostgreSQL.

Every write records the file's SHA-256 and size with the bytes; every read checks them (see
:mod:`qicollab.storage.base`). Use :func:`file_store` for a store built from settings, and in
the portal ``request.file_store`` (inside the request's transaction) or :func:`stream_store`
(for downloads that stream after the transaction has ended).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zope.sqlalchemy import mark_changed

from qicollab.config import storage_folder
from qicollab.storage.base import (
    FileReader,
    FileStore,
    InvalidKeyError,
    StoredEntry,
    StoredFile,
    StoredFileCorruptError,
    StoredFileMissingError,
)
from qicollab.storage.database import DatabaseFileStore
from qicollab.storage.local import LocalFileStore

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request
    from sqlalchemy.engine import Engine

SETTING = "qicollab.file_store"
BACKENDS = ("local", "database")

__all__ = [
    "BACKENDS",
    "SETTING",
    "DatabaseFileStore",
    "FileReader",
    "FileStore",
    "FileStoreConfig",
    "InvalidKeyError",
    "LocalFileStore",
    "StoredEntry",
    "StoredFile",
    "StoredFileCorruptError",
    "StoredFileMissingError",
    "file_store",
    "stream_store",
]


@dataclasses.dataclass(frozen=True, slots=True)
class FileStoreConfig:
    """Which backend, and the local folder; small and picklable for worker processes."""

    backend: str
    folder: str

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            msg = f"{SETTING} = {self.backend!r}: choose one of {', '.join(BACKENDS)}"
            raise ValueError(msg)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> FileStoreConfig:
        """The configuration the settings (ini and environment) ask for."""
        backend = str(settings.get(SETTING) or "local").strip().lower()
        return cls(backend, str(storage_folder(settings)))

    def build(self, engine: Engine | None = None) -> FileStore:
        """The store; the database backend needs the application's engine."""
        if self.backend == "database":
            if engine is None:
                msg = f"{SETTING} = database needs the database engine"
                raise ValueError(msg)
            return DatabaseFileStore(engine)
        return LocalFileStore(Path(self.folder))


def file_store(settings: dict[str, Any], engine: Engine | None = None) -> FileStore:
    """The store the settings choose (``engine``: the application's, for ``database``)."""
    return FileStoreConfig.from_settings(settings).build(engine)


def stream_store(request: Request) -> FileStore:
    """The application's store, outside any request transaction (for streaming downloads)."""
    return request.registry["file_store"]


def _request_store(request: Request) -> FileStore:
    store: FileStore = request.registry["file_store"]
    if not isinstance(store, DatabaseFileStore):
        return store
    # Core statements do not tell zope.sqlalchemy that the session changed: say so, or
    # pyramid_tm would roll the request's transaction back as a read-only one.
    return store.bound(
        request.db, on_write=lambda: mark_changed(request.db, transaction_manager=request.tm)
    )


def includeme(config: Configurator) -> None:
    """Build the store once (a bad setting stops the start) and add ``request.file_store``."""
    config.registry["file_store"] = file_store(config.get_settings(), config.registry["db.engine"])
    config.add_request_method(_request_store, "file_store", reify=True)
