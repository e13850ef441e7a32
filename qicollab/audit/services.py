"""Writing to the audit log, in the same transaction as the action it records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qicollab.audit.models import AuditEvent

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User


def record(
    db: Session,
    action: str,
    *,
    actor: User | str | None,
    object_type: str | None = None,
    object_id: object = None,
    collaborative_id: int | None = None,
    member_id: int | None = None,
    ip_address: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event; it commits or rolls back with the caller's transaction."""
    if actor is None or isinstance(actor, str):
        actor_id, actor_label = None, actor or "system"
    else:
        actor_id, actor_label = actor.id, actor.email
        collaborative_id = collaborative_id or actor.collaborative_id
    event = AuditEvent(
        action=action,
        actor_id=actor_id,
        actor=actor_label,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        collaborative_id=collaborative_id,
        member_id=member_id,
        ip_address=ip_address,
        details=details or {},
    )
    db.add(event)
    return event
