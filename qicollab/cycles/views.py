"""Portal pages of the workflow: cycles, their windows and sessions, review, completeness.

Coordinators (``COLLABORATIVE_MANAGE``) create, open, close, lock and publish cycles, reopen
locked periods and accept or return submitted versions; every signed-in user reads the cycles
and their learning sessions; a member's officers and viewers see that member's completeness
(``MEMBER_VIEW`` on the member), coordinators everyone's (``COLLABORATIVE_VIEW``).

A refused change (:class:`CycleError`) re-renders its page with status 422 and the reason; the
service raised before writing, so returning (which commits) stores nothing half-done.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import sqlalchemy as sa
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from qicollab.cycles.completeness import CELL_ORDER, CellStatus, Completeness
from qicollab.cycles.deadlines import due_text
from qicollab.cycles.models import CycleStatus, Granularity, LearningCycle, ReportingPeriod
from qicollab.cycles.planning import CycleDraft
from qicollab.cycles.reasons import CycleError
from qicollab.cycles.services import CycleService
from qicollab.jobs.queue import registry_queue
from qicollab.jobs.workers import worker_health
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.resources import can_submit
from qicollab.schedule.clock import clock_of
from qicollab.submissions.models import (
    AggregateValue,
    PatientRecord,
    Submission,
    SubmissionBatch,
)

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.resources import MemberResource
    from qicollab.submissions.resources import SubmissionResource

DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def service_for(request: Request) -> CycleService:
    """The cycle service of the signed-in user's collaborative (mail goes after commit)."""
    return request.find_service(CycleService)


def _cycle_or_404(request: Request, service: CycleService) -> LearningCycle:
    cycle = service.by_code(request.matchdict.get("code", ""))
    if cycle is None:
        raise HTTPNotFound
    return cycle


def parse_utc(text: str | None, *, field_name: str, required: bool = True) -> dt.datetime | None:
    """A ``datetime-local`` form value (or a bare date), read as UTC."""
    value = (text or "").strip()
    if not value:
        if required:
            msg = f"the {field_name} is required"
            raise CycleError(msg)
        return None
    for fmt in DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    msg = f"the {field_name} must be a date and time such as 2026-01-31T23:59 (UTC)"
    raise CycleError(msg)


def parse_date(text: str | None, *, field_name: str) -> dt.date:
    """A ``date`` form value."""
    try:
        return dt.date.fromisoformat((text or "").strip())
    except ValueError as error:
        msg = f"the {field_name} must be a date written YYYY-MM-DD"
        raise CycleError(msg) from error


def _local_path(request: Request, fallback: str) -> str:
    """Where to go back to: a path on this site only (no open redirects)."""
    target = request.POST.get("came_from", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return request.application_url + target
    return fallback


def _base(request: Request) -> dict[str, Any]:
    return {
        "csrf_token": get_csrf_token(request),
        "can_manage": bool(request.has_permission(Permission.COLLABORATIVE_MANAGE)),
        "now": clock_of(request)(),
        "due_text": due_text,
    }


# --- cycles ------------------------------------------------------------------------------------


@view_config(
    route_name="cycles.list",
    renderer="cycles/list.jinja2",
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
)
def cycle_list(request: Request) -> dict[str, Any]:
    """Every learning cycle with its window, deadline and status."""
    service = service_for(request)
    return {**_base(request), "cycles": service.cycles()}


def _form_values(request: Request, cycle: LearningCycle | None) -> dict[str, Any]:
    if request.method == "POST":
        post = request.POST
        return {
            "code": post.get("code", ""),
            "title": post.get("title", ""),
            "first_period": post.get("first_period", ""),
            "last_period": post.get("last_period", ""),
            "window_opens_at": post.get("window_opens_at", ""),
            "deadline": post.get("deadline", ""),
            "lock_date": post.get("lock_date", ""),
            "measures": post.getall("measures"),
        }
    if cycle is None:
        return {"code": "", "title": "", "measures": []}
    local = "%Y-%m-%dT%H:%M"
    return {
        "code": cycle.code,
        "title": cycle.title,
        "first_period": f"{cycle.first_period_start:%Y-%m}",
        "last_period": f"{cycle.last_period_end:%Y-%m}",
        "window_opens_at": cycle.window_opens_at.strftime(local),
        "deadline": cycle.deadline.strftime(local),
        "lock_date": cycle.lock_date.strftime(local) if cycle.lock_date else "",
        "measures": [m.code for m in cycle.measures],
    }


def _draft(values: dict[str, Any], code: str) -> CycleDraft:
    return CycleDraft(
        code=code,
        title=values["title"],
        first_period=values["first_period"],
        last_period=values["last_period"],
        window_opens_at=parse_utc(values["window_opens_at"], field_name="window opening"),
        deadline=parse_utc(values["deadline"], field_name="deadline"),
        lock_date=parse_utc(values["lock_date"], field_name="lock date", required=False),
        measure_codes=tuple(values["measures"]),
    )


@view_config(
    route_name="cycles.new",
    renderer="cycles/form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method=("GET", "POST"),
)
def cycle_new(request: Request) -> Any:
    """Create a cycle: its periods, measures, window, deadline and lock date."""
    service = service_for(request)
    values = _form_values(request, None)
    error = None
    if request.method == "POST":
        try:
            cycle = service.create(_draft(values, values["code"]), actor=request.identity)
        except CycleError as problem:
            error = str(problem)
            request.response.status = 422
        else:
            return HTTPSeeOther(request.route_url("cycles.detail", code=cycle.code))
    return {
        **_base(request),
        "cycle": None,
        "values": values,
        "error": error,
        "all_measures": service.measures(),
    }


@view_config(
    route_name="cycles.edit",
    renderer="cycles/form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method=("GET", "POST"),
)
def cycle_edit(request: Request) -> Any:
    """Change a cycle that is not locked yet."""
    service = service_for(request)
    cycle = _cycle_or_404(request, service)
    values = _form_values(request, cycle)
    error = None
    if request.method == "POST":
        try:
            service.update(cycle, _draft(values, cycle.code), actor=request.identity)
        except CycleError as problem:
            error = str(problem)
            request.response.status = 422
        else:
            return HTTPSeeOther(request.route_url("cycles.detail", code=cycle.code))
    return {
        **_base(request),
        "cycle": cycle,
        "values": values,
        "error": error,
        "all_measures": service.measures(),
    }


def _detail_context(
    request: Request, service: CycleService, cycle: LearningCycle, error: str | None = None
) -> dict[str, Any]:
    user = request.identity
    reopenings = service.reopenings(cycle)
    can_manage = bool(request.has_permission(Permission.COLLABORATIVE_MANAGE))
    if not can_manage:
        # Members see their own reopenings only: another member's is another member's business.
        reopenings = [r for r in reopenings if r.member_id in (None, user.member_id)]
    members = {m.id: m for m in service.members()}
    measures = service.measures(cycle)
    periods = {
        p.id: p
        for p in request.db.scalars(
            sa.select(ReportingPeriod).where(
                ReportingPeriod.id.in_([r.period_id for r in reopenings if r.period_id])
            )
        )
    }
    return {
        **_base(request),
        "cycle": cycle,
        "error": error,
        "measures": measures,
        "reopenings": reopenings,
        "members": members,
        "measure_by_id": {m.id: m for m in service.measures()},
        "period_by_id": periods,
        "sessions": service.sessions(cycle),
        "unreviewed": len(service.awaiting_review(cycle)) if can_manage else 0,
        "month_periods": [p.label for p in service.periods(cycle, Granularity.MONTH)],
        "year_periods": [p.label for p in service.periods(cycle, Granularity.YEAR)],
        "default_closes_at": (clock_of(request)() + dt.timedelta(days=14)).strftime(
            "%Y-%m-%dT%H:%M"
        ),
        "locked_states": (CycleStatus.LOCKED, CycleStatus.PUBLISHED),
        "pipeline": service.pipeline(cycle) if can_manage else None,
        "workers": worker_health(request.db, collaborative_id=service.collaborative_id)
        if can_manage
        else None,
        "lock_reason": cycle.lock_reason if can_manage else None,
        "status_history": service.status_history(cycle) if can_manage else [],
        "already_job": request.params.get("running", ""),
    }


@view_config(
    route_name="cycles.detail",
    renderer="cycles/detail.jinja2",
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
)
def cycle_detail(request: Request) -> dict[str, Any]:
    """One cycle: window, measures, periods, learning sessions; coordinators' actions."""
    service = service_for(request)
    return _detail_context(request, service, _cycle_or_404(request, service))


def _refused(request: Request, service: CycleService, cycle: LearningCycle, error: str) -> Any:
    request.response.status = 422
    request.override_renderer = "cycles/detail.jinja2"
    return _detail_context(request, service, cycle, error)


@view_config(
    route_name="cycles.transition",
    renderer="cycles/detail.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def cycle_transition(request: Request) -> Any:
    """Open, close, lock or publish the cycle."""
    service = service_for(request)
    cycle = _cycle_or_404(request, service)
    try:
        service.transition(
            cycle,
            request.POST.get("action", ""),
            actor=request.identity,
            reason=request.POST.get("reason"),
        )
    except CycleError as problem:
        return _refused(request, service, cycle, str(problem))
    return HTTPSeeOther(request.route_url("cycles.detail", code=cycle.code, _anchor="pipeline"))


@view_config(
    route_name="cycles.job",
    renderer="cycles/detail.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def cycle_job(request: Request) -> Any:
    """Compute the cycle's benchmark run or render its reports, as a job with progress.

    A second press while the job is queued or running shows that job instead of another.
    """
    service = service_for(request)
    cycle = _cycle_or_404(request, service)
    factory = request.registry["db.session_factory"]
    starts = {"compute": service.start_compute, "render": service.start_render}
    start = starts.get(request.matchdict.get("work", ""))
    if start is None:
        raise HTTPNotFound
    try:
        started = start(cycle, actor=request.identity, session_factory=factory)
    except CycleError as problem:
        return _refused(request, service, cycle, str(problem))
    query = {}
    if started.created:
        registry_queue(request.registry).enqueue_after_commit(request.db, started.job_id)
    else:
        query["running"] = str(started.job_id)
    return HTTPSeeOther(
        request.route_url("cycles.detail", code=cycle.code, _query=query, _anchor="pipeline")
    )


def _pick(request: Request, model: type, field: str, value: str, collaborative_id: int) -> Any:
    """A member, measure or period of this collaborative by its code/label; blank is None."""
    value = (value or "").strip()
    if not value:
        return None
    found = request.db.scalar(
        sa.select(model).where(
            model.collaborative_id == collaborative_id, getattr(model, field) == value
        )
    )
    if found is None:
        msg = f"unknown {model.__name__.lower().replace('reportingperiod', 'period')} {value!r}"
        raise CycleError(msg)
    return found


@view_config(
    route_name="cycles.reopen",
    renderer="cycles/detail.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def cycle_reopen(request: Request) -> Any:
    """Reopen a locked (or closed) period for a member and measure, with a reason on record."""
    service = service_for(request)
    cycle = _cycle_or_404(request, service)
    post = request.POST
    collaborative_id = request.identity.collaborative_id
    try:
        service.reopen(
            cycle,
            member=_pick(request, Member, "code", post.get("member", ""), collaborative_id),
            measure=_pick(request, Measure, "code", post.get("measure", ""), collaborative_id),
            period=_pick(
                request, ReportingPeriod, "label", post.get("period", ""), collaborative_id
            ),
            reason=post.get("reason", ""),
            closes_at=parse_utc(post.get("closes_at"), field_name="closing time"),
            actor=request.identity,
        )
    except CycleError as problem:
        return _refused(request, service, cycle, str(problem))
    return HTTPSeeOther(request.route_url("cycles.detail", code=cycle.code, _anchor="reopenings"))


@view_config(
    route_name="cycles.sessions",
    renderer="cycles/detail.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def cycle_session(request: Request) -> Any:
    """Record a learning session on the cycle."""
    service = service_for(request)
    cycle = _cycle_or_404(request, service)
    post = request.POST
    try:
        service.add_session(
            cycle,
            held_on=parse_date(post.get("held_on"), field_name="session date"),
            title=post.get("title", ""),
            notes=post.get("notes", ""),
            actor=request.identity,
        )
    except CycleError as problem:
        return _refused(request, service, cycle, str(problem))
    return HTTPSeeOther(request.route_url("cycles.detail", code=cycle.code, _anchor="sessions"))


# --- review ------------------------------------------------------------------------------------


def _values(request: Request, ids: set[int]) -> dict[int, dict[str, Any]]:
    """What each version holds: its aggregate value, or its number of patient rows."""
    found: dict[int, dict[str, Any]] = {}
    for value in request.db.scalars(
        sa.select(AggregateValue).where(AggregateValue.submission_id.in_(ids))
    ):
        found[value.submission_id] = {
            "numerator": value.numerator,
            "denominator": value.denominator,
            "exclusions": value.exclusions,
            "value": value.value,
            "comment": value.comment or "",
        }
    rows = request.db.execute(
        sa.select(PatientRecord.submission_id, sa.func.count())
        .where(PatientRecord.submission_id.in_(ids))
        .group_by(PatientRecord.submission_id)
    )
    for submission_id, count in rows:
        found[submission_id] = {"patient_rows": int(count), "comment": ""}
    return found


def _describe_versions(request: Request, submissions: list[Submission]) -> list[dict[str, Any]]:
    """Each version with its member, measure, period, values beside the previous version's,
    the warnings the member justified, the justification and the comment."""
    if not submissions:
        return []
    ids = {s.member_id for s in submissions}, {s.measure_id for s in submissions}
    members = {m.id: m for m in request.db.scalars(sa.select(Member).where(Member.id.in_(ids[0])))}
    measures = {
        m.id: m for m in request.db.scalars(sa.select(Measure).where(Measure.id.in_(ids[1])))
    }
    periods = {
        p.id: p
        for p in request.db.scalars(
            sa.select(ReportingPeriod).where(
                ReportingPeriod.id.in_({s.period_id for s in submissions})
            )
        )
    }
    wanted = {s.id for s in submissions} | {
        s.predecessor_id for s in submissions if s.predecessor_id
    }
    values = _values(request, wanted)
    justification = dict(
        request.db.execute(
            sa.select(SubmissionBatch.id, SubmissionBatch.warning_justification).where(
                SubmissionBatch.id.in_({s.batch_id for s in submissions if s.batch_id})
            )
        ).all()
    )
    return [
        {
            "submission": s,
            "member": members[s.member_id],
            "measure": measures[s.measure_id],
            "period": periods[s.period_id],
            "values": values.get(s.id, {}),
            "previous": values.get(s.predecessor_id) if s.predecessor_id else None,
            "warnings": s.warnings or [],
            "justification": justification.get(s.batch_id) or "",
        }
        for s in submissions
    ]


#: What the queue says after a decision (``?done=accepted&n=3``).
DONE_MESSAGES = {"accepted", "returned"}


def _queue_context(request: Request, error: str | None = None) -> dict[str, Any]:
    service = service_for(request)
    came_from = request.path_qs
    if request.method == "POST":
        came_from = _local_path(request, request.route_path("cycles.review_queue"))
        came_from = came_from.removeprefix(request.application_url)
    code = parse_qs(urlsplit(came_from).query).get("cycle", [""])[0]
    cycle = service.by_code(code) if code else None
    done = request.params.get("done", "")
    return {
        **_base(request),
        "came_from": came_from,
        "error": error,
        "done": done if done in DONE_MESSAGES else "",
        "done_count": int(request.params.get("n", "1") or 1)
        if request.params.get("n", "1").isdigit()
        else 1,
        "cycles": service.cycles(),
        "cycle": cycle,
        "items": _describe_versions(request, service.awaiting_review(cycle)),
    }


@view_config(
    route_name="cycles.review_queue",
    renderer="cycles/review.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="GET",
)
def review_queue(request: Request) -> dict[str, Any]:
    """Submitted versions waiting for a coordinator, oldest first."""
    return _queue_context(request)


@view_config(
    route_name="cycles.review",
    renderer="cycles/review.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def review(context: SubmissionResource, request: Request) -> Any:
    """Accept or return one version; the reason is kept on the version and in the audit log."""
    service = service_for(request)
    submission = context.submission
    try:
        service.review(
            submission,
            request.POST.get("decision", ""),
            reason=request.POST.get("reason"),
            actor=request.identity,
        )
    except CycleError as problem:
        request.response.status = 422
        return _queue_context(request, f"Version {submission.version}: {problem}")
    return HTTPSeeOther(_after_review(request, submission.status.value, 1))


def _after_review(request: Request, done: str, count: int) -> str:
    """Back to the queue the coordinator came from, saying what was done."""
    target = _local_path(request, request.route_url("cycles.review_queue"))
    parts = urlsplit(target)
    query = {k: v for k, v in parse_qs(parts.query).items() if k not in {"done", "n"}}
    query.update(done=[done], n=[str(count)])
    return parts._replace(query=urlencode(query, doseq=True)).geturl()


@view_config(
    route_name="cycles.review_many",
    renderer="cycles/review_confirm.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
)
def review_many(request: Request) -> Any:
    """Accept or return the chosen versions: first a confirmation listing them, then do it."""
    service = service_for(request)
    raw = request.POST.getall("ids")
    ids = [int(i) for i in raw if i.isdigit()]
    decision = request.POST.get("decision", "")
    reason = request.POST.get("reason")
    chosen = [s for s in (service.submission(i) for i in ids) if s is not None]
    if not chosen or decision not in {"accept", "return"}:
        request.response.status = 422
        request.override_renderer = "cycles/review.jinja2"
        return _queue_context(request, "Choose at least one submission, then Accept or Return.")
    if request.POST.get("confirmed") != "yes":
        return {
            **_base(request),
            "items": _describe_versions(request, chosen),
            "decision": decision,
            "reason": reason or "",
            "came_from": _local_path(
                request, request.route_url("cycles.review_queue")
            ).removeprefix(request.application_url),
        }
    try:
        done = service.review_many(
            [s.id for s in chosen], decision, reason=reason, actor=request.identity
        )
    except CycleError as problem:
        request.response.status = 422
        request.override_renderer = "cycles/review.jinja2"
        return _queue_context(request, str(problem))
    return HTTPSeeOther(_after_review(request, done[0].status.value, len(done)))


# --- completeness ------------------------------------------------------------------------------


def _chosen_cycle(request: Request, service: CycleService) -> LearningCycle | None:
    code = request.params.get("cycle", "")
    if code:
        cycle = service.by_code(code)
        if cycle is None:
            raise HTTPNotFound
        return cycle
    return service.current_cycle()


@view_config(
    route_name="cycles.completeness",
    renderer="cycles/completeness.jinja2",
    permission=Permission.COLLABORATIVE_VIEW,
    request_method="GET",
)
def completeness(request: Request) -> dict[str, Any]:
    """Every member x measure of a cycle: how many periods are missing, draft, ..., accepted."""
    service = service_for(request)
    cycle = _chosen_cycle(request, service)
    grid = service.completeness(cycle) if cycle is not None else None
    return {
        **_base(request),
        "cycles": service.cycles(),
        "cycle": cycle,
        "grid": grid,
        "statuses": CELL_ORDER,
    }


@view_config(
    route_name="cycles.member_completeness",
    renderer="cycles/member_completeness.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def member_completeness(context: MemberResource, request: Request) -> dict[str, Any]:
    """One member's measures x periods, with "due in N days" and why a period is closed."""
    member = context.member
    service = service_for(request)
    cycle = _chosen_cycle(request, service)
    grid = service.completeness(cycle, member_ids=[member.id]) if cycle is not None else None
    closed_reasons: dict[str, list[str]] = {}
    if grid is not None:
        for measure in grid.measures:
            reasons: list[str] = []
            for cell in grid.row(member.id, measure.id):
                needs_data = cell.status in {
                    CellStatus.MISSING,
                    CellStatus.DRAFT,
                    CellStatus.RETURNED,
                }
                if needs_data and not cell.window.is_open and cell.window.reason not in reasons:
                    reasons.append(cell.window.reason)
            if reasons:
                closed_reasons[measure.code] = reasons
    months = [p.label for p in service.periods(cycle, Granularity.MONTH)] if cycle else []
    return {
        **_base(request),
        "member": member,
        "month_labels": months,
        # A yearly period's cell spans its months.
        "year_span": {
            label[:4]: sum(m.startswith(label[:4]) for m in months) or 1 for label in months
        },
        "cycles": service.cycles(),
        "cycle": cycle,
        "grid": grid,
        "statuses": CELL_ORDER,
        "closed_reasons": closed_reasons,
        "can_submit": can_submit(request, context),
        "can_review": bool(request.has_permission(Permission.COLLABORATIVE_MANAGE)),
    }


# --- completeness export -----------------------------------------------------------------------

EXPORT_HEADER = (
    "cycle",
    "member",
    "measure",
    "period",
    "status",
    "version",
    "window",
    "review_reason",
)


def _completeness_csv(grid: Completeness, filename: str) -> Response:
    """Every cell of the grid, one a line, for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_HEADER)
    for member in grid.members:
        for measure in grid.measures:
            for cell in grid.row(member.id, measure.id):
                writer.writerow(
                    (
                        grid.cycle.code,
                        member.code,
                        measure.code,
                        cell.period_label,
                        cell.status.value,
                        cell.version or "",
                        cell.window.state.value,
                        cell.review_reason or "",
                    )
                )
    return Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        content_disposition=f'attachment; filename="{filename}"',
    )


@view_config(
    route_name="cycles.completeness_export",
    permission=Permission.COLLABORATIVE_VIEW,
    request_method="GET",
)
def completeness_export(request: Request) -> Response:
    """The coordinators' grid as CSV (every member x measure x period)."""
    service = service_for(request)
    cycle = _chosen_cycle(request, service)
    if cycle is None:
        raise HTTPNotFound
    return _completeness_csv(service.completeness(cycle), f"completeness-{cycle.code}.csv")


@view_config(
    route_name="cycles.member_completeness_export",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def member_completeness_export(context: MemberResource, request: Request) -> Response:
    """One member's cells as CSV."""
    member = context.member
    service = service_for(request)
    cycle = _chosen_cycle(request, service)
    if cycle is None:
        raise HTTPNotFound
    grid = service.completeness(cycle, member_ids=[member.id])
    return _completeness_csv(grid, f"completeness-{cycle.code}-{member.code}.csv")
