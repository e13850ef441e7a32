"""Portal pages of the improvement work.

Member pages (``/members/{id}/...``) are scoped by the member context: the team's officers
record PDSA cycles and monthly reports, its viewers read them, coordinators read every team's.
Collaborative pages: the change package (everyone reads, coordinators edit), the coordinators'
progress overview (scores, faculty scoring, who has not reported), the learning sessions with
their calendar, and the best-practice comparison every member may read (blinded).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
from pyramid.view import view_config

from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.improvement.drawing import distribution_svg, driver_diagram_svg, progress_trend_svg
from qicollab.improvement.models import ActDecision, Scorer
from qicollab.improvement.package import ChangePackageService, parse_evidence
from qicollab.improvement.pdsa import PdsaDraft, PdsaService, change_label, stage
from qicollab.improvement.practice import best_practice
from qicollab.improvement.progress import SCALE, ProgressService
from qicollab.improvement.sessions import SessionService, calendar
from qicollab.improvement.text import ImprovementError
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.reporting.results import ResultsNotFoundError, find_run, load_run
from qicollab.resources import MemberResource
from qicollab.schedule.calendar import LearningCycle
from qicollab.schedule.clock import clock_of

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.improvement.resources import PdsaResource, SessionResource


def _collaborative_id(request: Request) -> int:
    return request.identity.collaborative_id


def _today(request: Request) -> dt.date:
    return clock_of(request)().date()


def _date(text: str | None, *, field: str, label: str, required: bool = False) -> dt.date | None:
    raw = (text or "").strip()
    if not raw:
        if required:
            msg = f"the {label} is required"
            raise ImprovementError(msg, field=field)
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as error:
        msg = f"the {label} is not a date (YYYY-MM-DD): {raw[:20]!r}"
        raise ImprovementError(msg, field=field) from error


def _month(text: str | None, fallback: dt.date) -> dt.date:
    """A ``YYYY-MM`` query or form value as the month's first day."""
    raw = (text or "").strip()
    try:
        return dt.date.fromisoformat(f"{raw}-01") if raw else fallback.replace(day=1)
    except ValueError as error:
        msg = f"the month is written YYYY-MM, not {raw[:20]!r}"
        raise ImprovementError(msg, field="month") from error


def _id(text: str | None) -> int | None:
    raw = (text or "").strip()
    return int(raw) if raw.isdigit() else None


def _base(request: Request, **extra: Any) -> dict[str, Any]:
    return {
        "csrf_token": get_csrf_token(request),
        "can_manage": bool(request.has_permission(Permission.COLLABORATIVE_MANAGE)),
        "change_label": change_label,
        "stage": stage,
        **extra,
    }


# --- PDSA cycles -------------------------------------------------------------------------------


def _pdsa_service(request: Request) -> PdsaService:
    return request.find_service(PdsaService)


def _can_edit(request: Request, context: MemberResource) -> bool:
    return bool(request.has_permission(Permission.MEMBER_SUBMIT, context))


@view_config(
    route_name="improvement.pdsa_list",
    renderer="improvement/pdsa_list.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def pdsa_list(context: MemberResource, request: Request) -> dict[str, Any]:
    """The team's PDSA cycles, grouped in ramps."""
    member = context.member
    service = _pdsa_service(request)
    return _base(
        request,
        member=member,
        ramps=service.ramps(member.id),
        can_edit=_can_edit(request, context),
        deleted=request.params.get("deleted") == "1",
    )


def _draft(request: Request) -> PdsaDraft:
    post = request.POST
    decision: Any = (post.get("decision") or "").strip() or None
    return PdsaDraft(
        title=post.get("title", ""),
        starts_on=_date(
            post.get("starts_on"), field="starts_on", label="start date", required=True
        ),
        ends_on=_date(post.get("ends_on"), field="ends_on", label="end date"),
        measure_ids=tuple(i for i in (_id(v) for v in post.getall("measures")) if i is not None),
        change_idea_id=_id(post.get("change_idea")),
        own_change=post.get("own_change", ""),
        follows_id=_id(post.get("follows")),
        objective=post.get("objective", ""),
        prediction=post.get("prediction", ""),
        what_was_done=post.get("what_was_done", ""),
        observations=post.get("observations", ""),
        study=post.get("study", ""),
        decision=decision,
        decided_on=_date(post.get("decided_on"), field="decided_on", label="decision date"),
        next_steps=post.get("next_steps", ""),
        starts_phase=post.get("starts_phase") == "on",
    )


def _form(
    request: Request, member: Member, cycle: Any, values: dict[str, Any], error: str | None
) -> dict[str, Any]:
    measures = list(
        request.db.scalars(
            sa.select(Measure)
            .where(Measure.collaborative_id == member.collaborative_id, Measure.active.is_(True))
            .order_by(Measure.code)
        )
    )
    diagram = request.find_service(ChangePackageService).diagram()
    others = [
        c for c in _pdsa_service(request).for_member(member.id) if cycle is None or c.id != cycle.id
    ]
    return _base(
        request,
        member=member,
        cycle=cycle,
        values=values,
        error=error,
        measures=measures,
        ideas=diagram.ideas,
        others=others,
        decisions=list(ActDecision),
    )


def _values_of(cycle: Any) -> dict[str, Any]:
    if cycle is None:
        return {"measures": set()}
    return {
        "title": cycle.title,
        "starts_on": cycle.starts_on.isoformat(),
        "ends_on": cycle.ends_on.isoformat() if cycle.ends_on else "",
        "measures": {m.id for m in cycle.measures},
        "change_idea": cycle.change_idea_id,
        "own_change": cycle.own_change,
        "follows": cycle.follows_id,
        "objective": cycle.objective,
        "prediction": cycle.prediction,
        "what_was_done": cycle.what_was_done,
        "observations": cycle.observations,
        "study": cycle.study,
        "decision": cycle.decision.value if cycle.decision else "",
        "decided_on": cycle.decided_on.isoformat() if cycle.decided_on else "",
        "next_steps": cycle.next_steps,
        "starts_phase": cycle.starts_phase,
    }


def _posted_values(request: Request) -> dict[str, Any]:
    post = request.POST
    values: dict[str, Any] = {k: post.get(k, "") for k in post}
    values["measures"] = {_id(v) for v in post.getall("measures")}
    values["change_idea"] = _id(post.get("change_idea"))
    values["follows"] = _id(post.get("follows"))
    values["starts_phase"] = post.get("starts_phase") == "on"
    return values


@view_config(
    route_name="improvement.pdsa_new",
    renderer="improvement/pdsa_form.jinja2",
    permission=Permission.MEMBER_SUBMIT,
)
def pdsa_new(context: MemberResource, request: Request) -> Any:
    """Record a new PDSA cycle (``?follows=ID`` starts the next cycle of a ramp)."""
    member = context.member
    if request.method != "POST":
        values = {"measures": set(), "follows": _id(request.params.get("follows"))}
        return _form(request, member, None, values, None)
    try:
        cycle = _pdsa_service(request).create(member.id, _draft(request), actor=request.identity)
    except (ImprovementError, ValueError) as error:
        request.response.status = 422
        return _form(request, member, None, _posted_values(request), str(error))
    return HTTPSeeOther(
        request.route_url("improvement.pdsa_detail", member_id=member.id, pdsa_id=cycle.id)
    )


@view_config(
    route_name="improvement.pdsa_edit",
    renderer="improvement/pdsa_form.jinja2",
    permission=Permission.MEMBER_SUBMIT,
)
def pdsa_edit(context: PdsaResource, request: Request) -> Any:
    """Edit a cycle as it moves through Do, Study and Act."""
    member, cycle = context.member, context.cycle
    if request.method != "POST":
        return _form(request, member, cycle, _values_of(cycle), None)
    try:
        _pdsa_service(request).update(cycle, _draft(request), actor=request.identity)
    except (ImprovementError, ValueError) as error:
        request.response.status = 422
        return _form(request, member, cycle, _posted_values(request), str(error))
    return HTTPSeeOther(
        request.route_url("improvement.pdsa_detail", member_id=member.id, pdsa_id=cycle.id)
    )


def _can_delete(request: Request, context: MemberResource) -> bool:
    """The team's officers, and the collaborative's coordinators (who keep records tidy)."""
    return _can_edit(request, context) or bool(
        request.has_permission(Permission.COLLABORATIVE_MANAGE, context)
    )


@view_config(
    route_name="improvement.pdsa_delete",
    renderer="improvement/pdsa_delete.jinja2",
    permission=Permission.MEMBER_VIEW,
)
def pdsa_delete(context: PdsaResource, request: Request) -> Any:
    """Delete a cycle recorded by mistake, after a confirmation that says what goes with it."""
    if not _can_delete(request, context):
        raise HTTPForbidden
    member, cycle = context.member, context.cycle
    service = _pdsa_service(request)
    if request.method == "POST":
        service.delete(cycle, actor=request.identity)
        return HTTPSeeOther(
            request.route_url("improvement.pdsa_list", member_id=member.id, _query={"deleted": 1})
        )
    followers = [c for c in service.for_member(member.id) if c.follows_id == cycle.id]
    return _base(request, member=member, cycle=cycle, followers=followers)


@view_config(
    route_name="improvement.pdsa_detail",
    renderer="improvement/pdsa_detail.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def pdsa_detail(context: PdsaResource, request: Request) -> dict[str, Any]:
    """One cycle, its ramp and links to the charts it marks."""
    member, cycle = context.member, context.cycle
    return _base(
        request,
        member=member,
        cycle=cycle,
        ramp=_pdsa_service(request).ramp_of(cycle),
        can_edit=_can_edit(request, context),
        can_delete=_can_delete(request, context),
    )


# --- progress and monthly reports --------------------------------------------------------------


@view_config(
    route_name="improvement.progress",
    renderer="improvement/progress.jinja2",
    permission=Permission.MEMBER_VIEW,
)
def member_progress(context: MemberResource, request: Request) -> Any:
    """The team's score trend, its monthly reports and (officers) this month's report form."""
    member = context.member
    service = request.find_service(ProgressService)
    error, values = None, {}
    can_edit = _can_edit(request, context)
    try:
        month = _month(request.params.get("month"), _today(request))
    except ImprovementError as problem:
        month, error = _today(request).replace(day=1), str(problem)
    if request.method == "POST":
        if not can_edit:
            raise HTTPForbidden
        values = dict(request.POST)
        try:
            service.submit_report(
                member.id,
                month,
                tested=request.POST.get("tested", ""),
                learned=request.POST.get("learned", ""),
                barriers=request.POST.get("barriers", ""),
                score=request.POST.get("score", ""),
                actor=request.identity,
            )
        except ImprovementError as problem:
            request.response.status = 422
            error = str(problem)
        else:
            return HTTPSeeOther(
                request.route_url(
                    "improvement.progress",
                    member_id=member.id,
                    _query={"month": month.strftime("%Y-%m")},
                    _anchor="reports",
                )
            )
    report = service.report(member.id, month)
    if not values and report is not None:
        values = {"tested": report.tested, "learned": report.learned, "barriers": report.barriers}
    trend = service.trend(member.id)
    own = next((p.team for p in trend if p.month == month), None)
    return _base(
        request,
        member=member,
        month=month,
        error=error,
        values=values,
        own_score=own,
        can_edit=can_edit,
        scale=SCALE,
        trend=trend,
        trend_svg=progress_trend_svg(trend, title=f"Progress scores of {member.name}"),
        reports=service.reports(member.id),
        pdsas=_pdsa_service(request).active_in(member.id, month),
    )


@view_config(
    route_name="improvement.teams",
    renderer="improvement/teams.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
def teams(request: Request) -> Any:
    """Coordinators: every team's scores for a month, faculty scoring, who has not reported."""
    service = request.find_service(ProgressService)
    error = None
    try:
        month = _month(request.params.get("month"), _today(request))
    except ImprovementError as problem:
        month, error = _today(request).replace(day=1), str(problem)
    if request.method == "POST":
        member_id = _id(request.POST.get("member"))
        try:
            if member_id is None:
                msg = "choose a team"
                raise ImprovementError(msg, field="member")
            service.score(
                member_id,
                month,
                Scorer.FACULTY,
                request.POST.get("score", ""),
                comment=request.POST.get("comment", ""),
                actor=request.identity,
            )
        except ImprovementError as problem:
            request.response.status = 422
            error = str(problem)
        else:
            return HTTPSeeOther(
                request.route_url("improvement.teams", _query={"month": month.strftime("%Y-%m")})
            )
    members = list(
        request.db.scalars(
            sa.select(Member)
            .where(Member.collaborative_id == _collaborative_id(request), Member.active.is_(True))
            .order_by(Member.code)
        )
    )
    rows = []
    for member in members:
        point = next((p for p in service.trend(member.id) if p.month == month), None)
        rows.append(
            {
                "member": member,
                "team": point.team if point else None,
                "faculty": point.faculty if point else None,
                "report": service.report(member.id, month),
            }
        )
    distribution = service.distribution(month)
    return _base(
        request,
        month=month,
        error=error,
        rows=rows,
        missing=service.not_reported(month),
        scale=SCALE,
        distribution=distribution,
        distribution_svg=distribution_svg(distribution),
    )


# --- change package ------------------------------------------------------------------------------


@view_config(
    route_name="improvement.package",
    renderer="improvement/package.jinja2",
    permission=Permission.COLLABORATIVE_READ,
)
def change_package(request: Request) -> Any:
    """The driver diagram for everyone; coordinators add and edit its parts here."""
    service = request.find_service(ChangePackageService)
    error = None
    if request.method == "POST":
        if not request.has_permission(Permission.COLLABORATIVE_MANAGE):
            raise HTTPForbidden
        post, actor = request.POST, request.identity
        try:
            part = post.get("part")
            if part == "aim":
                service.save_aim(
                    aim=post.get("aim", ""), description=post.get("description", ""), actor=actor
                )
            elif part == "driver":
                service.save_driver(
                    title=post.get("title", ""),
                    description=post.get("description", ""),
                    parent_id=_id(post.get("parent")),
                    driver_id=_id(post.get("driver_id")),
                    actor=actor,
                )
            elif part == "idea":
                driver_id = _id(post.get("driver"))
                if driver_id is None:
                    msg = "choose the secondary driver the idea hangs from"
                    raise ImprovementError(msg, field="driver")
                service.save_idea(
                    driver_id=driver_id,
                    code=post.get("code", ""),
                    title=post.get("title", ""),
                    description=post.get("description", ""),
                    evidence=parse_evidence(post.get("evidence", "")),
                    idea_id=_id(post.get("idea_id")),
                    actor=actor,
                )
            else:
                msg = "unknown part of the change package"
                raise ImprovementError(msg)
        except ImprovementError as problem:
            request.response.status = 422
            error = str(problem)
        else:
            return HTTPSeeOther(request.route_url("improvement.package"))
    diagram = service.diagram()
    return _base(
        request,
        diagram=diagram,
        diagram_svg=driver_diagram_svg(diagram) if diagram.aim else "",
        error=error,
        values=dict(request.POST) if error else {},
    )


# --- learning sessions ---------------------------------------------------------------------------


@view_config(
    route_name="improvement.sessions",
    renderer="improvement/sessions.jinja2",
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
)
def sessions(request: Request) -> dict[str, Any]:
    """Each cycle's learning sessions and the action periods between them."""
    service = request.find_service(SessionService)
    cycles = list(
        request.db.scalars(
            sa.select(LearningCycle)
            .where(LearningCycle.collaborative_id == _collaborative_id(request))
            .order_by(LearningCycle.first_period_start.desc())
        )
    )
    return _base(
        request,
        calendars=[(cycle, calendar(cycle, service.sessions(cycle))) for cycle in cycles],
    )


@view_config(
    route_name="improvement.session",
    renderer="improvement/session.jinja2",
    permission=Permission.COLLABORATIVE_READ,
)
def session(context: SessionResource, request: Request) -> Any:
    """A session's agenda and material; coordinators edit them and record attendance."""
    service = request.find_service(SessionService)
    learning_session, cycle = context.session, context.cycle
    session_id = learning_session.id
    manage = bool(request.has_permission(Permission.COLLABORATIVE_MANAGE))
    error = None
    if request.method == "POST":
        if not manage:
            raise HTTPForbidden
        error = _edit_session(request, service, learning_session.id)
        if error is None:
            return HTTPSeeOther(request.route_url("improvement.session", session_id=session_id))
        request.response.status = 422
    members = list(
        request.db.scalars(
            sa.select(Member)
            .where(Member.collaborative_id == _collaborative_id(request), Member.active.is_(True))
            .order_by(Member.code)
        )
    )
    attendance = service.attendance(learning_session.id)
    materials = service.materials(learning_session.id)
    own = request.identity.member_id
    runs = list(
        request.db.scalars(
            sa.select(BenchmarkRun)
            .where(
                BenchmarkRun.collaborative_id == _collaborative_id(request),
                BenchmarkRun.status == RunStatus.SUCCEEDED,
            )
            .order_by(BenchmarkRun.id.desc())
        )
    )
    return _base(
        request,
        session=learning_session,
        cycle=cycle,
        agenda=service.agenda(learning_session.id),
        materials=materials,
        summary_pdfs=service.summary_pdfs(materials),
        attendance=attendance,
        # Members see their own team's attendance only; coordinators every team's.
        members=members if manage else [m for m in members if m.id == own],
        attended=len(attendance),
        people=sum(attendance.values()),
        runs=runs if manage else [],
        error=error,
    )


def _edit_session(request: Request, service: SessionService, session_id: int) -> str | None:
    post, actor = request.POST, request.identity
    try:
        part = post.get("part")
        if part == "agenda":
            service.add_agenda_item(
                session_id,
                title=post.get("title", ""),
                starts_at=post.get("starts_at", ""),
                presenter=post.get("presenter", ""),
                actor=actor,
            )
        elif part == "material":
            service.attach(
                session_id,
                post.get("kind", ""),
                run_id=_id(post.get("run")),
                title=post.get("title", ""),
                url=post.get("url", ""),
                actor=actor,
            )
        elif part == "attendance":
            people = {}
            for key, value in post.items():
                if key.startswith("people-") and key[7:].isdigit():
                    raw = value.strip() or "0"
                    if not raw.isdigit():
                        msg = "attendance is a whole number of people"
                        raise ImprovementError(msg, field="attendance")
                    people[int(key[7:])] = int(raw)
            service.record_attendance(session_id, people, actor=actor)
        else:
            msg = "unknown part of the session"
            raise ImprovementError(msg)
    except ImprovementError as problem:
        return str(problem)
    return None


# --- best-practice comparison -------------------------------------------------------------------


@view_config(
    route_name="improvement.best_practice",
    renderer="improvement/best_practice.jinja2",
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
)
def best_practice_page(request: Request) -> dict[str, Any]:
    """What the best performers and the improvers changed, against the rest (blinded counts);
    members read the newest published run, coordinators the newest run."""
    coordinator = bool(request.has_permission(Permission.COLLABORATIVE_VIEW))
    try:
        run = find_run(request.db, _collaborative_id(request), None, published_only=not coordinator)
    except ResultsNotFoundError:
        return _base(request, run=None, measures=[])
    data = load_run(request.db, run.id)
    return _base(request, run=data, measures=best_practice(request.db, data))
