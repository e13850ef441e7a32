"""The audit log for coordinators: filter by action, actor, member and date; export as CSV.

Coordinators see their own collaborative's events; admins also see events that belong to no
collaborative (failed logins for unknown addresses). The CSV export escapes every cell that a
spreadsheet would run as a formula (:func:`qicollab.exports.csv_bytes`), because actor names,
reasons and details are typed by users. Every export is itself audited.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.response import Response
from pyramid.view import view_config

from qicollab.accounts.models import Role
from qicollab.audit.models import AuditEvent
from qicollab.audit.services import record
from qicollab.exports import csv_bytes
from qicollab.members.models import Member
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request

PAGE_SIZE = 100
#: An export is one bounded download; narrower filters get the rest.
EXPORT_LIMIT = 100_000
CSV_HEADER = (
    "occurred_at_utc",
    "action",
    "actor",
    "actor_id",
    "object_type",
    "object_id",
    "member",
    "ip_address",
    "details",
)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What the coordinator asked for; blank fields filter nothing."""

    action: str = ""
    actor: str = ""
    member: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    problems: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: Any) -> AuditFilters:
        """Read the query string; a malformed date is reported, not fatal."""
        problems: list[str] = []

        def day(name: str, label: str) -> dt.date | None:
            text = (params.get(name) or "").strip()
            if not text:
                return None
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                problems.append(f"the {label} date must be written YYYY-MM-DD")
                return None

        return cls(
            action=(params.get("action") or "").strip()[:64],
            actor=(params.get("actor") or "").strip()[:254],
            member=(params.get("member") or "").strip()[:32],
            date_from=day("from", "from"),
            date_to=day("to", "to"),
            problems=tuple(problems),
        )

    def query_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for paging and the export link)."""
        args = {
            "action": self.action,
            "actor": self.actor,
            "member": self.member,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
        }
        return {key: value for key, value in args.items() if value}


def _escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (by backslash), so it matches literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def events_query(request: Request, filters: AuditFilters) -> sa.Select:
    """The filtered events of the user's collaborative, newest first."""
    user = request.identity
    scope = AuditEvent.collaborative_id == user.collaborative_id
    if user.role is Role.ADMIN:
        scope = sa.or_(scope, AuditEvent.collaborative_id.is_(None))
    query = (
        sa.select(AuditEvent, Member.code)
        .outerjoin(Member, Member.id == AuditEvent.member_id)
        .where(scope)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    )
    if filters.action:
        # "submission" matches every submission.* action; a full name matches itself.
        query = query.where(
            sa.or_(
                AuditEvent.action == filters.action,
                AuditEvent.action.like(_escape_like(filters.action) + ".%", escape="\\"),
            )
        )
    if filters.actor:
        query = query.where(
            sa.func.lower(AuditEvent.actor).like(
                f"%{_escape_like(filters.actor.lower())}%", escape="\\"
            )
        )
    if filters.member:
        query = query.where(Member.code == filters.member)
    if filters.date_from:
        start = dt.datetime.combine(filters.date_from, dt.time(), tzinfo=dt.UTC)
        query = query.where(AuditEvent.occurred_at >= start)
    if filters.date_to:
        end = dt.datetime.combine(filters.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        query = query.where(AuditEvent.occurred_at < end)
    return query


def _actions(request: Request) -> list[str]:
    user = request.identity
    return list(
        request.db.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.collaborative_id == user.collaborative_id)
            .distinct()
            .order_by(AuditEvent.action)
        )
    )


def _details_text(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, default=str, ensure_ascii=False)


@view_config(
    route_name="audit.list",
    renderer="audit/list.jinja2",
    permission=Permission.AUDIT_VIEW,
    request_method="GET",
)
def audit_list(request: Request) -> dict[str, Any]:
    """One page of the filtered log, newest first."""
    filters = AuditFilters.from_params(request.GET)
    raw_page = request.GET.get("page", "1")
    page = max(1, int(raw_page)) if raw_page.isdigit() else 1
    query = events_query(request, filters)
    total = request.db.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = request.db.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return {
        "filters": filters,
        "events": [(event, code, _details_text(event.details)) for event, code in rows],
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "actions": _actions(request),
        "query_args": filters.query_args(),
    }


@view_config(
    route_name="audit.export",
    permission=Permission.AUDIT_VIEW,
    request_method="GET",
)
def audit_export(request: Request) -> Response:
    """The filtered log as CSV (formula-escaped); the download itself is audited."""
    filters = AuditFilters.from_params(request.GET)
    rows = request.db.execute(events_query(request, filters).limit(EXPORT_LIMIT)).all()
    body = csv_bytes(
        CSV_HEADER,
        (
            (
                event.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                event.action,
                event.actor,
                event.actor_id,
                event.object_type,
                event.object_id,
                code,
                event.ip_address,
                _details_text(event.details),
            )
            for event, code in rows
        ),
    )
    record(
        request.db,
        "audit.exported",
        actor=request.identity,
        object_type="audit_log",
        ip_address=request.client_addr,
        details={"filters": filters.query_args(), "rows": len(rows)},
    )
    response = Response(body=body, content_type="text/csv", charset="utf-8")
    stamp = (request.registry.get("qicollab.clock") or _now)().strftime("%Y%m%d-%H%M%S")
    response.content_disposition = f'attachment; filename="audit-log-{stamp}.csv"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control = "no-store"
    return response


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
