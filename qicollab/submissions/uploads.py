"""A short-lived server-side store for uploads between the preview and the commit.

The officer uploads once, sees the preview, and commits by a random token: the browser does
not send the file again. Files live under ``<storage>/uploads/`` (owner-only permissions), keyed
by an unguessable token, tied to the member they were uploaded for, and are deleted after the
commit or when they expire. A file refused for PHI is never put here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from qicollab.db import utcnow

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")
DEFAULT_TTL = dt.timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload waiting for its commit."""

    token: str
    member_id: int
    measure_code: str
    filename: str
    created_at: dt.datetime
    data: bytes


class UploadStore:
    """Uploads waiting for a commit, as files in the storage folder."""

    def __init__(self, storage: Path, *, ttl: dt.timedelta = DEFAULT_TTL) -> None:
        self.folder = storage / "uploads"
        self.ttl = ttl

    def _paths(self, token: str) -> tuple[Path, Path]:
        if not TOKEN_PATTERN.match(token):
            raise KeyError(token)
        return self.folder / f"{token}.bin", self.folder / f"{token}.json"

    def put(self, *, member_id: int, measure_code: str, filename: str, data: bytes) -> str:
        """Keep ``data``; returns its token. Expired uploads are swept on the way."""
        self.purge_expired()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(24)
        body, meta = self._paths(token)
        for path, content in (
            (body, data),
            (
                meta,
                json.dumps(
                    {
                        "member_id": member_id,
                        "measure_code": measure_code,
                        "filename": filename[:200],
                        "created_at": utcnow().isoformat(),
                    }
                ).encode(),
            ),
        ):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
        return token

    def get(self, token: str, *, member_id: int) -> StoredUpload | None:
        """The upload, if it exists, belongs to ``member_id`` and has not expired."""
        try:
            body, meta = self._paths(token)
            info = json.loads(meta.read_text())
            created = dt.datetime.fromisoformat(info["created_at"])
            if info["member_id"] != member_id:
                return None
            if utcnow() - created > self.ttl:
                self.delete(token)
                return None
            data = body.read_bytes()
        except (KeyError, OSError, ValueError):
            return None
        return StoredUpload(
            token=token,
            member_id=info["member_id"],
            measure_code=info["measure_code"],
            filename=info["filename"],
            created_at=created,
            data=data,
        )

    def delete(self, token: str) -> None:
        """Forget an upload (after its commit)."""
        try:
            paths = self._paths(token)
        except KeyError:
            return
        for path in paths:
            path.unlink(missing_ok=True)

    def purge_expired(self) -> int:
        """Delete uploads older than the time-to-live; returns how many."""
        if not self.folder.exists():
            return 0
        cutoff = (utcnow() - self.ttl).timestamp()
        removed = 0
        for path in self.folder.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff:
                    self.delete(path.stem)
                    removed += 1
            except OSError:
                continue
        return removed
