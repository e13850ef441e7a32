"""A short-lived server-side store for uploads between the preview and the commit.

The officer uploads once, sees the preview, and commits by a random token: the browser does
not send the file again. Files live in the file store under ``uploads/`` (in the local folder
with owner-only permissions, or in the database), keyed by an unguessable token, tied to the
member they were uploaded for, and are deleted after the commit or when they expire.
A file refused for PHI is never put here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import dataclass

from qicollab.db import utcnow
from qicollab.storage import FileStore, StoredFileCorruptError

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")
DEFAULT_TTL = dt.timedelta(hours=2)
FOLDER = "uploads"


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
    """Uploads waiting for a commit, in the file store (``uploads/<token>.bin`` and ``.json``).

    The description (member, measure, name, time, and the body's SHA-256) is written after the
    body, so an upload exists only once both are complete, and its body is checked on reading.
    """

    def __init__(self, store: FileStore, *, ttl: dt.timedelta = DEFAULT_TTL) -> None:
        self.store = store
        self.ttl = ttl

    @staticmethod
    def _keys(token: str) -> tuple[str, str]:
        if not TOKEN_PATTERN.match(token):
            raise KeyError(token)
        return f"{FOLDER}/{token}.bin", f"{FOLDER}/{token}.json"

    def put(self, *, member_id: int, measure_code: str, filename: str, data: bytes) -> str:
        """Keep ``data``; returns its token. Expired uploads are swept on the way."""
        self.purge_expired()
        token = secrets.token_urlsafe(24)
        body, meta = self._keys(token)
        stored = self.store.put(body, data)
        description = {
            "member_id": member_id,
            "measure_code": measure_code,
            "filename": filename[:200],
            "created_at": utcnow().isoformat(),
            "sha256": stored.sha256,
        }
        self.store.put(meta, json.dumps(description).encode())
        return token

    def get(self, token: str, *, member_id: int) -> StoredUpload | None:
        """The upload, if it exists, belongs to ``member_id`` and has not expired."""
        try:
            body, meta = self._keys(token)
            info = json.loads(self.store.read(meta))
            created = dt.datetime.fromisoformat(info["created_at"])
            if info["member_id"] != member_id:
                return None
            if utcnow() - created > self.ttl:
                self.delete(token)
                return None
            data = self.store.read(body, sha256=info["sha256"])
        except (KeyError, OSError, ValueError):
            return None
        except StoredFileCorruptError:
            log.warning("pending upload %s does not match its recorded hash", token)
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
        """Forget an upload (after its commit); the description first, so it is gone at once."""
        try:
            body, meta = self._keys(token)
        except KeyError:
            return
        self.store.delete(meta)
        self.store.delete(body)

    def purge_expired(self) -> int:
        """Delete uploads older than the time-to-live; returns how many."""
        cutoff = utcnow() - self.ttl
        removed = 0
        for entry in self.store.list(FOLDER):
            if entry.key.endswith(".json") and entry.stored_at < cutoff:
                self.delete(entry.key.removeprefix(f"{FOLDER}/").removesuffix(".json"))
                removed += 1
        return removed
