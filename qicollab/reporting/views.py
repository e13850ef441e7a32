"""Results in the portal: a member's results page, the coordinators' overview, exports (CSV,
XLSX, FHIR MeasureReport), a run's reports with the render job, and audited downloads.

Views stay thin: find the run, build the audience, call the builders in :mod:`.sections`,
:mod:`.overview` and :mod:`.exports` (the same ones the PDF reports use). Who may see what is
decided by the resources' ACLs and by the audience; a member of another collaborative is a 404.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import exception_view_config, view_config

from qicollab.audit.services import record
from qicollab.benchmarking.payloads import StalePayloadError
from qicollab.jobs.models import Job
from qicollab.jobs.services import JobService, JobState, task_counts
from qicollab.members.models import Collaborative, Member
from qicollab.permissions import Permission
from qicollab.reporting import formatting
from qicollab.reporting.exports import measure_report_bundle, results_table, to_csv, to_xlsx
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.overview import build_overview
from qicollab.reporting.page_cache import results_page_sections
from qicollab.reporting.privacy import Audience
from qicollab.reporting.rendering import JOB_KIND
from qicollab.reporting.results import (
    ResultsNotFoundError,
    RunData,
    find_run,
    load_run,
    run_is_published,
    succeeded_runs,
)
from qicollab.reporting.sections import executive_summary
from qicollab.resources import MemberResource, Root
from qicollab.storage import InvalidKeyError, StoredFileMissingError, stream_store

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.accounts.models import User
    from qicollab.reporting.resources import ReportResource, RunResource


def _user(request: Request) -> User:
    user = request.identity
    if user is None:  # views all require a permission, so this is defensive
        raise HTTPForbidden
    return user


def _collaborative(request: Request) -> Collaborative:
    collaborative = request.db.get(Collaborative, _user(request).collaborative_id)
    if collaborative is None:
        raise HTTPNotFound
    return collaborative


def _coordinates(request: Request) -> bool:
    """Coordinators (and admins): identified results, and runs before their cycle is published."""
    return bool(request.has_permission(Permission.COLLABORATIVE_VIEW, Root(request)))


def _audience_for(request: Request, member: Member, collaborative: Collaborative) -> Audience:
    """Coordinators (and admins) see identities; everyone else sees its own member only."""
    if _coordinates(request):
        return Audience.coordinator(collaborative.min_cell_size)
    return Audience.member(member.id, collaborative.min_cell_size)


def _run_id(request: Request) -> int | None:
    raw = request.params.get("run", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise HTTPBadRequest("run must be a number")
    return int(raw)


def _load(request: Request, collaborative: Collaborative) -> RunData | None:
    """The ``?run=`` (else the newest) run the user may see; None when there is none yet, 404
    for an asked-for run they may not see (members: only runs of published cycles)."""
    run_id = _run_id(request)
    try:
        run = find_run(
            request.db, collaborative.id, run_id, published_only=not _coordinates(request)
        )
    except ResultsNotFoundError:
        if run_id is not None:
            raise HTTPNotFound from None
        return None
    return load_run(request.db, run.id)


@exception_view_config(StalePayloadError, renderer="errors/409.jinja2")
def stale_run(exc: StalePayloadError, request: Request) -> dict[str, Any]:
    """409: the run was stored by another payload version; it is refused, never misread."""
    request.response.status = 409
    return {"reason": str(exc)}


def _page(request: Request, **context: Any) -> dict[str, Any]:
    return {**formatting.template_globals(), **context}


# --- member results -----------------------------------------------------------------------------


@view_config(
    route_name="reporting.member_results",
    renderer="reporting/member_results.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def member_results(context: MemberResource, request: Request) -> dict[str, Any]:
    """Every measure of a run for one member: value, interval, decile, status, benchmark gap,
    peer comparison, funnel, caterpillar and control chart, and the summary table."""
    member = context.member
    collaborative = _collaborative(request)
    audience = _audience_for(request, member, collaborative)
    run = _load(request, collaborative)
    if run is None:
        return _page(
            request,
            member=member,
            run=None,
            runs=[],
            audience=audience,
            published_only=not audience.identified,
        )
    group = run.peer_group(request.params.get("peer_group"))
    if request.params.get("peer_group") and group is None:
        raise HTTPNotFound
    sections = results_page_sections(request.db, run, member.id, audience, group=group)
    return _page(
        request,
        member=member,
        run=run,
        runs=succeeded_runs(request.db, collaborative.id, published_only=not audience.identified),
        group=group,
        audience=audience,
        sections=sections,
        summary=executive_summary(sections),
        identified=audience.identified,
    )


@view_config(
    route_name="reporting.member_export",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def member_export(context: MemberResource, request: Request) -> Response:
    """The results table as CSV or XLSX: the member identified, peers blinded and suppressed
    (coordinators: everyone identified); every text cell formula-escaped."""
    member = context.member
    collaborative = _collaborative(request)
    audience = _audience_for(request, member, collaborative)
    run = _load(request, collaborative)
    if run is None:
        raise HTTPNotFound
    group = run.peer_group(request.params.get("peer_group"))
    if audience.identified:
        # A coordinator exporting from a member's page still sees that member as "own".
        audience = Audience(audience.reader, audience.min_cell_size, member.id)
    header, rows = results_table(run, audience, group=group)
    name = f"results-run-{run.run.id}-{member.code}"
    record(
        request.db,
        "results.exported",
        actor=request.identity,
        object_type="benchmark_run",
        object_id=run.run.id,
        member_id=member.id,
        ip_address=request.client_addr,
        details={"format": request.matchdict["ext"], "rows": len(rows)},
    )
    return _file_response(request, header, rows, name, title=f"Run {run.run.id}")


def _file_response(
    request: Request,
    header: tuple[str, ...],
    rows: list[list[object]],
    name: str,
    *,
    title: str,
) -> Response:
    ext = request.matchdict["ext"]
    if ext == "csv":
        body, content_type = to_csv(header, rows), "text/csv"
    elif ext == "xlsx":
        body = to_xlsx(header, rows, title=title)
        content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        raise HTTPNotFound
    response = Response(body=body, content_type=content_type)
    response.content_disposition = f'attachment; filename="{name}.{ext}"'
    response.cache_control = "no-store"
    return response


@view_config(
    route_name="reporting.fhir",
    renderer="json",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def measure_reports(context: MemberResource, request: Request) -> dict[str, Any]:
    """The member's results of a run as a FHIR R4 Bundle of summary MeasureReports."""
    member = context.member
    collaborative = _collaborative(request)
    run = _load(request, collaborative)
    if run is None:
        raise HTTPNotFound
    request.response.content_type = "application/fhir+json"
    request.response.cache_control = "no-store"
    return measure_report_bundle(run, member.id)


# --- the coordinators' overview -----------------------------------------------------------------


@view_config(
    route_name="reporting.overview",
    renderer="reporting/overview.jinja2",
    permission=Permission.COLLABORATIVE_VIEW,
    request_method="GET",
)
def overview(request: Request) -> dict[str, Any]:
    """Members x measures with status and icons, who improved most, who is missing data."""
    collaborative = _collaborative(request)
    run = _load(request, collaborative)
    if run is None:
        return _page(request, run=None, runs=[], collaborative=collaborative)
    audience = Audience.coordinator(collaborative.min_cell_size)
    built = build_overview(request.db, run, audience, charts=True)
    return _page(
        request,
        run=run,
        runs=succeeded_runs(request.db, collaborative.id, published_only=False),
        collaborative=collaborative,
        overview=built,
    )


@view_config(
    route_name="reporting.overview_export",
    permission=Permission.COLLABORATIVE_VIEW,
    request_method="GET",
)
def overview_export(request: Request) -> Response:
    """Every member's results, identified (coordinators only)."""
    collaborative = _collaborative(request)
    run = _load(request, collaborative)
    if run is None:
        raise HTTPNotFound
    header, rows = results_table(run, Audience.coordinator(collaborative.min_cell_size))
    record(
        request.db,
        "results.exported",
        actor=request.identity,
        object_type="benchmark_run",
        object_id=run.run.id,
        ip_address=request.client_addr,
        details={"format": request.matchdict["ext"], "rows": len(rows), "identified": True},
    )
    return _file_response(
        request, header, rows, f"results-run-{run.run.id}-all", title=f"Run {run.run.id}"
    )


# --- reports: list, render, download ------------------------------------------------------------


def _latest_render_job(request: Request, run_id: int, collaborative_id: int) -> JobState | None:
    jobs = request.db.scalars(
        sa.select(Job)
        .where(Job.kind == JOB_KIND, Job.collaborative_id == collaborative_id)
        .order_by(Job.id.desc())
        .limit(20)
    )
    for job in jobs:
        if (job.params or {}).get("run_id") == run_id:
            return JobState.of(job, tasks=task_counts(request.db, job.id))
    return None


def _visible_reports(request: Request, reports: list[Report]) -> list[Report]:
    """Coordinators see every report; members their own report and the blinded summary."""
    if _coordinates(request):
        return reports
    member_id = _user(request).member_id
    return [
        r
        for r in reports
        if r.kind is ReportKind.BLINDED_SUMMARY
        or (r.kind is ReportKind.MEMBER and r.member_id == member_id)
    ]


@view_config(
    route_name="reporting.run_reports",
    renderer="reporting/run_reports.jinja2",
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
)
def run_reports(context: RunResource, request: Request) -> dict[str, Any]:
    """The run's reports the user may download, and the render job's status."""
    collaborative = _collaborative(request)
    run = context.run
    reports = list(
        request.db.scalars(
            sa.select(Report).where(Report.run_id == run.id).order_by(Report.kind, Report.member_id)
        )
    )
    visible = _visible_reports(request, reports)
    wanted = {r.member_id for r in visible if r.member_id is not None}
    names = dict(
        request.db.execute(sa.select(Member.id, Member.name).where(Member.id.in_(wanted))).all()
    )
    manage = request.has_permission(Permission.COLLABORATIVE_MANAGE, Root(request))
    job = _latest_render_job(request, run.id, collaborative.id)
    if job is not None and not manage:
        job = job.without_workers()  # which hosts rendered is for coordinators
    return _page(
        request,
        run=run,
        published=run_is_published(request.db, run),
        reports=visible,
        names=names,
        job=job,
        can_render=bool(manage),
        csrf_token=get_csrf_token(request) if manage else "",
        refresh=job is not None and not job.finished,
    )


@view_config(
    route_name="reporting.run_reports",
    permission=Permission.COLLABORATIVE_MANAGE,
    request_method="POST",
    require_csrf=True,
)
def start_render(context: RunResource, request: Request) -> HTTPSeeOther:
    """Queue a job that renders every report of the run (coordinators); while one is under
    way, show it instead of starting another (two batches would write the same reports)."""
    from qicollab.jobs.queue import JobQueue  # noqa: PLC0415
    from qicollab.reporting import tasks  # noqa: F401, PLC0415 - registers the job handler

    collaborative = _collaborative(request)
    run = context.run
    under_way = _latest_render_job(request, run.id, collaborative.id)
    if under_way is not None and not under_way.finished:  # a second click, or a second tab
        return HTTPSeeOther(request.route_url("reporting.run_reports", run_id=run.id))
    jobs = request.find_service(JobService)
    job = jobs.create(
        JOB_KIND,
        params={"run_id": run.id},
        collaborative_id=collaborative.id,
        created_by_id=_user(request).id,
        session=request.db,
    )
    record(
        request.db,
        "reports.render_requested",
        actor=request.identity,
        object_type="benchmark_run",
        object_id=run.id,
        ip_address=request.client_addr,
        details={"job_id": job.id},
    )
    queue = request.registry.get("qicollab.job_queue")
    if queue is None:
        queue = request.registry["qicollab.job_queue"] = JobQueue(
            request.registry.settings, engine=request.registry["db.engine"]
        )
    queue.enqueue_after_commit(request.db, job.id)
    return HTTPSeeOther(request.route_url("reporting.run_reports", run_id=run.id))


@view_config(
    route_name="reporting.download",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def download(context: ReportResource, request: Request) -> Response:
    """The PDF, audited, streamed from the file store: the bytes whose hash the row records."""
    report = context.report
    try:
        reader = stream_store(request).open(report.path, sha256=report.sha256)
    except (StoredFileMissingError, InvalidKeyError):
        raise HTTPNotFound from None
    body = reader.started()  # a mismatching report of up to 1 MiB is refused here (500)
    record(
        request.db,
        "report.downloaded",
        actor=request.identity,
        object_type="report",
        object_id=report.id,
        member_id=report.member_id,
        ip_address=request.client_addr,
        details={"kind": report.kind.value, "run_id": report.run_id, "sha256": report.sha256},
    )
    response = Response(
        app_iter=body, content_type="application/pdf", content_length=reader.size_bytes
    )
    # The recorded hash (RFC 9530); bigger files that fail it end short of Content-Length.
    digest = base64.b64encode(bytes.fromhex(report.sha256)).decode()
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    stamp = dt.date.today().isoformat()
    label = report.kind.value if report.member_id is None else f"member-{report.member_id}"
    response.content_disposition = (
        f'attachment; filename="qicollab-run-{report.run_id}-{label}-{stamp}.pdf"'
    )
    response.cache_control = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
