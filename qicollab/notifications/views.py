"""The signed-in user's e-mail preferences: which kinds of workflow mail to receive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from qicollab.audit.services import record
from qicollab.notifications.models import NotificationKind, NotificationOptOut
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request


@view_config(
    route_name="account.notifications",
    renderer="notifications/preferences.jinja2",
    permission=Permission.ACCOUNT,
)
def preferences(request: Request) -> Any:
    """Tick the kinds you want; unticked kinds are not mailed to you."""
    user = request.identity
    if request.method == "POST":
        wanted = set(request.POST.getall("kinds"))
        request.db.execute(
            sa.delete(NotificationOptOut).where(NotificationOptOut.user_id == user.id)
        )
        off = [kind for kind in NotificationKind if kind.value not in wanted]
        request.db.add_all(NotificationOptOut(user_id=user.id, kind=kind) for kind in off)
        record(
            request.db,
            "notifications.preferences_changed",
            actor=user,
            object_type="user",
            object_id=user.id,
            details={"off": sorted(kind.value for kind in off)},
        )
        return HTTPSeeOther(request.route_url("account.notifications", _query={"saved": "1"}))
    off = set(
        request.db.scalars(
            sa.select(NotificationOptOut.kind).where(NotificationOptOut.user_id == user.id)
        )
    )
    return {
        "kinds": [(kind, kind not in off) for kind in NotificationKind],
        "saved": bool(request.params.get("saved")),
        "csrf_token": get_csrf_token(request),
    }
