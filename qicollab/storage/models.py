"""The database file store's tables: one row per object, its bytes in fixed-size chunks.

A bytea (PostgreSQL) / BLOB (SQLite) chunk table rather than PostgreSQL large objects: the same
SQL runs on both databases; deleting a row deletes its bytes (large objects outlive their
references until ``vacuumlo``); each chunk is read by its own short query, so a download holds
no transaction open while a slow client reads; and ``pg_dump`` of the schema includes them.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, utcnow


class FileRow(Base):
    """A stored file. ``key`` is NULL while it is being written, so readers never find it."""

    __tablename__ = "stored_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str | None] = mapped_column(sa.String(500), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    chunk_count: Mapped[int]
    stored_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FileChunk(Base):
    """``seq``-th chunk of a file's bytes (all chunks but the last are the same size)."""

    __tablename__ = "stored_file_chunks"

    file_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
