"""``Idempotency-Key`` for API POSTs: a retried request gets the first response, once stored.

The key is claimed first, inside a SAVEPOINT, so two identical requests racing on PostgreSQL
do not both store: the second insert waits for the first transaction and then fails on the
unique (user, key) constraint, and that request answers with the first one's stored response.
(SQLite writers are already serialised by ``BEGIN IMMEDIATE``.) Only successful stores are
remembered: a refused request releases its claim so the client can fix and retry the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from qicollab.submissions.models import IdempotencyKey

if TYPE_CHECKING:
    from pyramid.request import Request

HEADER = "Idempotency-Key"
#: Set on a replayed response, so clients can tell.
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A JSON response to send (and maybe remember)."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def request_fingerprint(request: Request) -> str:
    """SHA-256 over the method, path, query string (sorted) and body of the request."""
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\0" + request.path.encode())
    query = "&".join(sorted(f"{k}={v}" for k, v in request.GET.items()))
    digest.update(b"\0" + query.encode())
    digest.update(b"\0" + request.body)
    return digest.hexdigest()


def _stored(request: Request, key: str) -> IdempotencyKey | None:
    return request.db.scalar(
        sa.select(IdempotencyKey).where(
            IdempotencyKey.user_id == request.identity.id, IdempotencyKey.key == key
        )
    )


def run_once(
    request: Request,
    key: str | None,
    compute: Callable[[], Outcome],
    *,
    mismatch: Callable[[], Outcome],
) -> Outcome:
    """``compute()`` once per (user, key); replay or refuse (``mismatch()``) on a retry."""
    if not key:
        return compute()
    fingerprint = request_fingerprint(request)
    claim = IdempotencyKey(
        user_id=request.identity.id,
        key=key,
        request_hash=fingerprint,
        response_status=0,
        response_body={},
    )
    try:
        with request.db.begin_nested():
            request.db.add(claim)
            request.db.flush()
    except IntegrityError:
        claim = None
    if claim is None:
        stored = _stored(request, key)
        if stored is None or stored.request_hash != fingerprint:
            return mismatch()
        return Outcome(stored.response_status, dict(stored.response_body), replayed=True)
    outcome = compute()
    if 200 <= outcome.status < 300:
        claim.response_status = outcome.status
        claim.response_body = outcome.body
    else:
        request.db.delete(claim)
    request.db.flush()
    return outcome
