"""The JSON API: thin views over :class:`SubmissionService` and the workflow's windows.

Every operation is described in ``openapi.yaml``; pyramid_openapi3 validates each request
before the view runs and each response after it, so a response that drifts from the document is
a 500, not a surprise for a client. Views therefore *return* every error as a documented JSON
body instead of raising Pyramid's HTML exceptions.

Who may do what is decided by the member's context resource (:class:`MemberResource`): a token
submits for a member only with ``MEMBER_SUBMIT`` there (the member's quality officers) or
``COLLABORATIVE_MANAGE`` (coordinators, on a member's behalf); reading needs ``MEMBER_VIEW``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml
from pyramid.httpexceptions import HTTPForbidden
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)
from pyramid_openapi3.exceptions import RequestValidationError, ResponseValidationError

from qicollab.api import fhir
from qicollab.api.idempotency import HEADER, REPLAYED_HEADER, Outcome, run_once
from qicollab.audit.services import record
from qicollab.cycles.models import Granularity, ReportingPeriod
from qicollab.measures.models import DataLevel, Measure, MeasureType
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.resources import MemberResource
from qicollab.schedule.clock import clock_of
from qicollab.schedule.windows import WindowCalendar, WindowState
from qicollab.submissions.errors import (
    JustificationRequiredError,
    ParseError,
    PHIRefusedError,
    ReasonRequiredError,
    SubmissionError,
    WindowClosedError,
)
from qicollab.submissions.identifiers import scrub
from qicollab.submissions.models import AggregateValue, Submission, SubmissionSource
from qicollab.submissions.parsing import Limits
from qicollab.submissions.services import CommitResult, PreviewResult, SubmissionService

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.accounts.models import User
    from qicollab.submissions.resources import SubmissionResource

log = logging.getLogger(__name__)

SPEC_PATH = Path(__file__).with_name("openapi.yaml")
API_PATHS = r"^/api/"
FHIR_PATHS = r"^/api/fhir/"
JSON = "application/json"


class ApiError(Exception):
    """A documented error response; views catch it and return it."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        message = scrub(message)  # never quote back a value the screen would refuse
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The ``Error`` schema."""
        return {"status": self.status, "code": self.code, "message": self.message, **self.extra}


def json_response(
    status: int,
    body: Mapping[str, Any],
    *,
    content_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON (or FHIR JSON) response that no cache keeps."""
    response = Response(status=status, content_type=content_type, charset="utf-8")
    response.text = json.dumps(body, separators=(",", ":"), default=str)
    response.cache_control = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def outcome_response(outcome: Outcome, *, content_type: str = JSON) -> Response:
    """An :class:`Outcome` as a response, flagged when it is a replay."""
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else None
    return json_response(outcome.status, outcome.body, content_type=content_type, headers=headers)


def api_view(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """Turn :class:`ApiError` into its documented JSON body."""

    @functools.wraps(handler)
    def wrapper(request: Request) -> Response:
        try:
            _refuse_undeclared_query(request)
            return handler(request)
        except ApiError as error:
            return json_response(error.status, error.body())

    return wrapper


def _refuse_undeclared_query(request: Request) -> None:
    """A query parameter the document does not declare is a mistake (a typo of ``dry_run``
    would otherwise store what was meant as a trial): 400."""
    route = request.matched_route
    if route is None or not request.GET:
        return
    declared = _query_names().get((route.pattern, request.method.lower()))
    if declared is None:
        return
    unknown = sorted(set(request.GET) - declared)
    if unknown:
        raise ApiError(
            400,
            "bad_request",
            f"unknown query parameter(s): {', '.join(repr(name) for name in unknown[:5])}; "
            "see /api/openapi.json",
        )


@functools.cache
def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters the document declares, by (path, method)."""
    document = json.loads(_spec_json())
    shared = document.get("components", {}).get("parameters", {})

    def resolve(parameter: dict[str, Any]) -> dict[str, Any]:
        reference = parameter.get("$ref", "")
        return shared[reference.rsplit("/", 1)[-1]] if reference else parameter

    names: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in document["paths"].items():
        common = [resolve(p) for p in item.get("parameters", [])]
        for method, operation in item.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            parameters = common + [resolve(p) for p in operation.get("parameters", [])]
            names[path, method] = frozenset(p["name"] for p in parameters if p["in"] == "query")
    return names


# --- who and for which member --------------------------------------------------------------------


def _user(request: Request) -> User:
    return request.identity


def resolve_member(request: Request, code: str | None, permission: Permission) -> Member:
    """The member a request acts for, if the token's user holds ``permission`` on it.

    Officers and viewers default to their own member; naming another member is 403 whether or
    not it exists (no probing of member codes). Coordinators must name the member.
    """
    user = _user(request)
    if code:
        member = request.db.scalar(
            sa.select(Member).where(
                Member.collaborative_id == user.collaborative_id, Member.code == code
            )
        )
    elif user.member_id is not None:
        member = request.db.get(Member, user.member_id)
    else:
        raise ApiError(422, "member_required", "name the member with 'member' (its code)")
    if member is None:
        if user.member_id is not None:
            raise ApiError(403, "forbidden", "this token acts for its own member only")
        raise ApiError(404, "not_found", f"no member {code!r}")
    context = MemberResource(request, member)
    allowed = request.has_permission(permission, context)
    if permission is Permission.MEMBER_SUBMIT and not allowed:
        allowed = request.has_permission(Permission.COLLABORATIVE_MANAGE, context)
    if not allowed:
        if permission is Permission.MEMBER_SUBMIT and member.id == user.member_id:
            raise ApiError(403, "forbidden", "this token may read but not submit")
        raise ApiError(403, "forbidden", "this token acts for its own member only")
    return member


def measure_by_code(request: Request, member: Member, code: str) -> Measure:
    """An active measure of the member's collaborative, else 404."""
    measure = request.db.scalar(
        sa.select(Measure).where(
            Measure.collaborative_id == member.collaborative_id,
            Measure.code == code,
            Measure.active.is_(True),
        )
    )
    if measure is None:
        raise ApiError(404, "not_found", f"no active measure {code!r}")
    return measure


def submission_service(request: Request) -> SubmissionService:
    """The shared pipeline, on the request's clock and upload limits."""
    return request.find_service(SubmissionService)


def _query(request: Request) -> Mapping[str, Any]:
    return request.openapi_validated.parameters.query


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


# --- the document --------------------------------------------------------------------------------


@functools.cache
def _spec_json() -> str:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return json.dumps(yaml.safe_load(handle), indent=2)


@view_config(route_name="api.openapi_json", permission=NO_PERMISSION_REQUIRED, request_method="GET")
def openapi_json(request: Request) -> Response:
    """The OpenAPI document as JSON (the same as ``/api/openapi.yaml``)."""
    response = Response(body=_spec_json().encode(), content_type=JSON, charset="utf-8")
    response.cache_control = "public, max-age=300"
    return response


# --- catalogue -----------------------------------------------------------------------------------


@view_config(
    route_name="api.me",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def me(request: Request) -> Response:
    """The token's user."""
    user = _user(request)
    member = request.db.get(Member, user.member_id) if user.member_id else None
    return json_response(
        200,
        {"email": user.email, "role": user.role.value, "member": member.code if member else None},
    )


@view_config(
    route_name="api.measures",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def measures(request: Request) -> Response:
    """Active measures with the periods the member can submit now."""
    member = resolve_member(request, _query(request).get("member"), Permission.MEMBER_VIEW)
    service = submission_service(request)
    found = request.db.scalars(
        sa.select(Measure)
        .where(Measure.collaborative_id == member.collaborative_id, Measure.active.is_(True))
        .order_by(Measure.code)
    )
    return json_response(
        200,
        {
            "member": member.code,
            "measures": [
                {
                    "code": m.code,
                    "title": m.title,
                    "level": m.level.value,
                    "measure_type": m.measure_type.value,
                    "open_periods": service.open_periods(member, m),
                }
                for m in found
            ],
        },
    )


@view_config(
    route_name="api.measure",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def measure_definition(request: Request) -> Response:
    """A measure's definition and its columns for this member (templates say the same)."""
    member = resolve_member(request, _query(request).get("member"), Permission.MEMBER_VIEW)
    measure = measure_by_code(request, member, request.matchdict["code"])
    service = submission_service(request)
    layout = service.layout(member, measure)
    return json_response(
        200,
        {
            "code": measure.code,
            "title": measure.title,
            "description": measure.description,
            "level": measure.level.value,
            "measure_type": measure.measure_type.value,
            "direction": measure.direction.value,
            "unit": measure.unit,
            "numerator_definition": measure.numerator_definition,
            "denominator_definition": measure.denominator_definition,
            "exclusion_definition": measure.exclusion_definition,
            "deid_profile": layout.deid_profile.value,
            "allows_month": layout.allows_month,
            "endpoint": request.route_path(
                "api.submit_patient" if layout.is_patient else "api.submit_aggregate"
            ),
            "columns": [
                {
                    "name": c.name,
                    "kind": c.kind.value,
                    "label": c.label,
                    "required": c.required,
                    "description": c.description,
                    "allowed": c.allowed_values(),
                    "levels": list(c.levels),
                    "minimum": c.minimum,
                    "maximum": c.maximum,
                    "example": c.example,
                }
                for c in layout.columns
            ],
            "open_periods": service.open_periods(member, measure),
        },
    )


def _granularity(measure: Measure) -> Granularity:
    return Granularity.YEAR if measure.level is DataLevel.PATIENT else Granularity.MONTH


@view_config(
    route_name="api.periods",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def periods(request: Request) -> Response:
    """The measure's periods inside learning cycles, each with its window and the reason."""
    query = _query(request)
    member = resolve_member(request, query.get("member"), Permission.MEMBER_VIEW)
    measure = measure_by_code(request, member, request.matchdict["code"])
    windows = WindowCalendar.load(request.db, member.collaborative_id)
    now = clock_of(request)()
    rows = request.db.scalars(
        sa.select(ReportingPeriod)
        .where(
            ReportingPeriod.collaborative_id == member.collaborative_id,
            ReportingPeriod.granularity == _granularity(measure),
        )
        .order_by(ReportingPeriod.start_date)
    )
    found = []
    for period in rows:
        window = windows.status(member.id, measure.id, period, now)
        if window.state is WindowState.NO_CYCLE or (query.get("open") and not window.is_open):
            continue
        found.append(
            {
                "period": period.label,
                "start": period.start_date.isoformat(),
                "end": period.end_date.isoformat(),
                "state": window.state.value,
                "open": window.is_open,
                "reason": window.reason,
                "cycle": window.cycle_code,
                "deadline": _iso(window.deadline),
                "until": _iso(window.until),
            }
        )
    return json_response(200, {"member": member.code, "measure": measure.code, "periods": found})


# --- versions ------------------------------------------------------------------------------------


def _version_json(
    submission: Submission,
    measure_code: str,
    period_label: str,
    member_code: str,
    values: AggregateValue | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": submission.id,
        "member": member_code,
        "measure": measure_code,
        "period": period_label,
        "version": submission.version,
        "status": submission.status.value,
        "submitted_at": _iso(submission.submitted_at),
        "reason": submission.reason,
        "predecessor_id": submission.predecessor_id,
        "reviewed_at": _iso(submission.reviewed_at),
        "review_reason": submission.review_reason,
    }
    if values is not None:
        data["values"] = {
            "numerator": values.numerator,
            "denominator": values.denominator,
            "exclusions": values.exclusions,
            "value": values.value,
            "comment": values.comment,
        }
    return data


@view_config(
    route_name="api.submissions",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def list_submissions(request: Request) -> Response:
    """The member's versions, newest first, filtered by measure, period and status."""
    query = _query(request)
    member = resolve_member(request, query.get("member"), Permission.MEMBER_VIEW)
    measure = measure_by_code(request, member, query["measure"]) if query.get("measure") else None
    versions = submission_service(request).versions(member, measure)
    period, status = query.get("period"), query.get("status")
    return json_response(
        200,
        {
            "member": member.code,
            "versions": [
                _version_json(s, code, label, member.code)
                for s, code, label in versions
                if (not period or label == period) and (not status or s.status.value == status)
            ],
        },
    )


@view_config(
    route_name="api.submission",
    openapi=True,
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
    require_csrf=False,
)
@api_view
def get_submission(request: Request) -> Response:
    """One version; another member's versions are 404, as if they did not exist (the context
    factory, :func:`~qicollab.submissions.resources.readable_submission_factory`)."""
    context: SubmissionResource = request.context
    submission, member = context.submission, context.member
    measure_code = request.db.get_one(Measure, submission.measure_id).code
    period_label = request.db.get_one(ReportingPeriod, submission.period_id).label
    values = request.db.scalar(
        sa.select(AggregateValue).where(AggregateValue.submission_id == submission.id)
    )
    return json_response(
        200, _version_json(submission, measure_code, period_label, member.code, values)
    )


# --- submitting ----------------------------------------------------------------------------------


def _problems(problems: Sequence[Any]) -> list[dict[str, Any]]:
    return [problem.to_json() for problem in problems]


def _preview_json(preview: PreviewResult, member: Member, measure: Measure) -> dict[str, Any]:
    return {
        "dry_run": True,
        "stored": False,
        "duplicate": False,
        "ok": preview.ok,
        "member": member.code,
        "measure": measure.code,
        "rows": preview.rows_read,
        "batch_id": None,
        "errors": preview.error_count,
        "warnings": preview.warning_count,
        "needs_reason": preview.needs_reason,
        "needs_justification": preview.needs_justification,
        "periods": [
            {
                "period": plan.period,
                "action": plan.action.value,
                "rows": plan.rows,
                "submission_id": plan.current_id if plan.action.value == "unchanged" else None,
                "version": plan.new_version or plan.current_version,
                "status": plan.current_status.value if plan.current_status else None,
                "predecessor_id": plan.current_id if plan.action.value == "replace" else None,
            }
            for plan in preview.periods
        ],
        "problems": _problems(preview.problems),
    }


def _commit_json(result: CommitResult, member: Member, measure: Measure) -> dict[str, Any]:
    return {
        "dry_run": False,
        "stored": not result.duplicate,
        "duplicate": result.duplicate,
        "member": member.code,
        "measure": measure.code,
        "rows": result.rows,
        "batch_id": result.batch_id,
        "errors": 0,
        "warnings": len(result.warnings),
        "periods": [
            {
                "period": ref.period,
                "action": ref.action.value,
                "rows": ref.rows,
                "submission_id": ref.submission_id,
                "version": ref.version,
                "status": ref.status.value,
                "predecessor_id": ref.predecessor_id,
            }
            for ref in result.versions
        ],
        "problems": _problems(result.warnings),
    }


def window_reasons(
    request: Request, member: Member, measure: Measure, labels: Sequence[str]
) -> dict[str, str]:
    """Why each period is closed, in the words the portal uses."""
    windows = WindowCalendar.load(request.db, member.collaborative_id)
    now = clock_of(request)()
    found = request.db.scalars(
        sa.select(ReportingPeriod).where(
            ReportingPeriod.collaborative_id == member.collaborative_id,
            ReportingPeriod.label.in_(list(labels)),
        )
    )
    return {p.label: windows.status(member.id, measure.id, p, now).reason for p in found}


def refusal(request: Request, error: SubmissionError, member: Member, measure: Measure) -> ApiError:
    """The documented 422 for a refused submission (audited when PHI was refused)."""
    problems = _problems(error.all_problems)
    if isinstance(error, PHIRefusedError):
        # Kinds and counts only: nothing of the content reaches the log.
        record(
            request.db,
            "submission.refused",
            actor=request.identity,
            object_type="member",
            object_id=member.id,
            member_id=member.id,
            ip_address=request.client_addr,
            details={
                "measure": measure.code,
                "source": "api",
                "rules": sorted({problem.rule for problem in error.problems}),
                "cells": len(error.problems),
            },
        )
        return ApiError(422, "phi_refused", error.message, problems=problems)
    if isinstance(error, WindowClosedError):
        windows = window_reasons(request, member, measure, sorted(error.reasons))
        return ApiError(422, "window_closed", error.message, problems=problems, windows=windows)
    if isinstance(error, JustificationRequiredError):
        return ApiError(422, "justification_required", error.message, problems=problems)
    if isinstance(error, ReasonRequiredError):
        return ApiError(422, "reason_required", error.message, problems=problems)
    if isinstance(error, ParseError):
        return ApiError(422, "unreadable", error.message, problems=problems)
    return ApiError(422, "invalid", error.message, problems=problems)


def _mismatch() -> Outcome:
    return Outcome(
        422,
        {
            "status": 422,
            "code": "idempotency_key_reused",
            "message": "this Idempotency-Key was used with a different request; use a new key",
        },
    )


def _too_large(request: Request) -> None:
    limit = Limits.from_settings(request.registry.settings).max_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")


def _submit(request: Request, level: DataLevel) -> Response:
    _too_large(request)
    body = request.openapi_validated.body
    member = resolve_member(request, body.get("member"), Permission.MEMBER_SUBMIT)
    measure = measure_by_code(request, member, body["measure"])
    if measure.level is not level:
        other = (
            "api.submit_patient" if measure.level is DataLevel.PATIENT else "api.submit_aggregate"
        )
        raise ApiError(
            422,
            "wrong_endpoint",
            f"{measure.code} is a {measure.level.value}-level measure: send it to "
            f"{request.route_path(other)}",
        )
    rows = [dict(row) for row in body["rows"]]
    service = submission_service(request)
    if _query(request).get("dry_run"):
        try:
            preview = service.preview_rows(
                member=member, measure=measure, rows=rows, source=SubmissionSource.API
            )
        except SubmissionError as error:
            raise refusal(request, error, member, measure) from None
        return json_response(200, _preview_json(preview, member, measure))

    def compute() -> Outcome:
        try:
            result = service.submit_rows(
                member=member,
                measure=measure,
                rows=rows,
                source=SubmissionSource.API,
                actor=request.identity,
                reason=body.get("reason"),
                justification=body.get("justification"),
                draft=bool(body.get("draft")),
                ip_address=request.client_addr,
            )
        except SubmissionError as error:
            failed = refusal(request, error, member, measure)
            return Outcome(failed.status, failed.body())
        return Outcome(200 if result.duplicate else 201, _commit_json(result, member, measure))

    return outcome_response(
        run_once(request, request.headers.get(HEADER), compute, mismatch=_mismatch)
    )


@view_config(
    route_name="api.submit_aggregate",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="POST",
    require_csrf=False,
)
@api_view
def submit_aggregate(request: Request) -> Response:
    """Aggregate rows through the same pipeline as uploads (dry run, idempotency)."""
    return _submit(request, DataLevel.AGGREGATE)


@view_config(
    route_name="api.submit_patient",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="POST",
    require_csrf=False,
)
@api_view
def submit_patient(request: Request) -> Response:
    """Patient-level rows through the same pipeline as uploads (dry run, idempotency)."""
    return _submit(request, DataLevel.PATIENT)


# --- FHIR ----------------------------------------------------------------------------------------


def fhir_response(status: int, issues: Sequence[fhir.Issue]) -> Response:
    """An OperationOutcome response."""
    return json_response(status, fhir.operation_outcome(issues), content_type=fhir.FHIR_JSON)


def _problem_issues(problems: Sequence[Any], paths: Mapping[str, str]) -> list[fhir.Issue]:
    issues = []
    for problem in problems:
        where = paths.get(problem.column or "", "MeasureReport")
        code = "business-rule" if problem.rule == "window_closed" else "value"
        if problem.rule.startswith("phi_"):
            code = "security"
        severity = "warning" if problem.severity.value == "warning" else "error"
        issues.append(fhir.Issue(severity, code, f"{problem.message}. {problem.fix}", (where,)))
    return issues


def _import_measure_report(request: Request) -> Outcome:
    try:
        document = json.loads(request.body)
    except ValueError:
        issue = fhir.Issue("error", "structure", "the body is not JSON", ("MeasureReport",))
        return Outcome(400, fhir.operation_outcome([issue]))
    try:
        parsed = fhir.parse_measure_report(document)
    except fhir.FhirImportError as error:
        return Outcome(error.status, fhir.operation_outcome(error.issues))
    try:
        member = resolve_member(request, parsed.member_code, Permission.MEMBER_SUBMIT)
    except ApiError as error:
        code = "forbidden" if error.status == 403 else "not-found"
        issue = fhir.Issue("error", code, error.message, ("MeasureReport.reporter",))
        return Outcome(error.status, fhir.operation_outcome([issue]))
    try:
        measure = measure_by_code(request, member, parsed.measure_code)
    except ApiError as error:
        issue = fhir.Issue("error", "not-found", error.message, ("MeasureReport.measure",))
        return Outcome(422, fhir.operation_outcome([issue]))
    if measure.level is not DataLevel.AGGREGATE:
        issue = fhir.Issue(
            "error",
            "not-supported",
            f"{measure.code} is a patient-level measure; MeasureReport import is for aggregate "
            "measures (use /api/submissions/patient)",
            ("MeasureReport.measure",),
        )
        return Outcome(422, fhir.operation_outcome([issue]))
    period = request.db.scalar(
        sa.select(ReportingPeriod).where(
            ReportingPeriod.collaborative_id == member.collaborative_id,
            ReportingPeriod.granularity == Granularity.MONTH,
            ReportingPeriod.start_date == parsed.period_start,
            ReportingPeriod.end_date == parsed.period_end,
        )
    )
    if period is None:
        issue = fhir.Issue(
            "error",
            "value",
            "period must be one reporting month: start on its first day and end on its last "
            f"(got {parsed.period_start.isoformat()} to {parsed.period_end.isoformat()})",
            ("MeasureReport.period",),
        )
        return Outcome(422, fhir.operation_outcome([issue]))
    mean = measure.measure_type in {MeasureType.MEAN, MeasureType.TIME_BETWEEN_EVENTS}
    ordered = measure.measure_type in {MeasureType.PROPORTION, MeasureType.RATE}
    issues = fhir.check_counts(parsed, mean=mean, ordered=ordered)
    if issues:
        return Outcome(422, fhir.operation_outcome(issues))
    row = parsed.row(period.label, mean=mean)
    query = _query(request)
    service = submission_service(request)
    try:
        if query.get("dry_run"):
            preview = service.preview_rows(
                member=member, measure=measure, rows=[row], source=SubmissionSource.FHIR
            )
            if not preview.ok:
                return Outcome(
                    422, fhir.operation_outcome(_problem_issues(preview.problems, parsed.paths))
                )
            plan = preview.periods[0]
            text = f"dry run: {measure.code} {period.label} would be {plan.action.value}"
            return Outcome(
                200,
                fhir.operation_outcome(
                    [
                        fhir.Issue("information", "informational", text, ("MeasureReport",)),
                        *_problem_issues(preview.problems, parsed.paths),
                    ]
                ),
            )
        result = service.submit_rows(
            member=member,
            measure=measure,
            rows=[row],
            source=SubmissionSource.FHIR,
            actor=request.identity,
            reason=query.get("reason"),
            justification=query.get("justification"),
            ip_address=request.client_addr,
        )
    except SubmissionError as error:
        windows = refusal(request, error, member, measure).extra.get("windows") or {}
        # A closed window is said once, in the portal's words, instead of the row problem.
        problems = [p for p in error.problems if not (windows and p.rule == "window_closed")]
        issues = _problem_issues(problems, parsed.paths) + [
            fhir.Issue("error", "business-rule", text, ("MeasureReport.period",))
            for text in windows.values()
        ]
        if not issues:
            issues = [fhir.Issue("error", "processing", error.message, ("MeasureReport",))]
        return Outcome(422, fhir.operation_outcome(issues))
    texts = [
        f"{measure.code} {ref.period}: version {ref.version} "
        f"{'already current' if result.duplicate else 'stored'} (submission {ref.submission_id})"
        for ref in result.versions
    ]
    return Outcome(
        200 if result.duplicate else 201,
        fhir.operation_outcome(
            [fhir.Issue("information", "informational", text, ("MeasureReport",)) for text in texts]
            + _problem_issues(result.warnings, parsed.paths)
        ),
    )


@view_config(
    route_name="api.fhir_measure_report",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="POST",
    require_csrf=False,
)
def import_measure_report(request: Request) -> Response:
    """A FHIR R4 summary MeasureReport as one aggregate version; errors as OperationOutcome."""
    limit = Limits.from_settings(request.registry.settings).max_bytes
    if (request.content_length or 0) > limit:
        issue = fhir.Issue("error", "too-costly", f"the body is larger than {limit} bytes")
        return fhir_response(413, [issue])
    if _query(request).get("dry_run"):
        outcome = _import_measure_report(request)
    else:
        outcome = run_once(
            request,
            request.headers.get(HEADER),
            lambda: _import_measure_report(request),
            mismatch=lambda: Outcome(
                422,
                fhir.operation_outcome(
                    [
                        fhir.Issue(
                            "error",
                            "conflict",
                            "this Idempotency-Key was used with a different request; use a new key",
                        )
                    ]
                ),
            ),
        )
    return outcome_response(outcome, content_type=fhir.FHIR_JSON)


# --- errors outside the views ------------------------------------------------------------------


def _is_fhir(request: Request) -> bool:
    return request.path.startswith("/api/fhir/")


@forbidden_view_config(path_info=API_PATHS)
def api_forbidden(exc: HTTPForbidden, request: Request) -> Response:
    """401 with a Bearer challenge when no token was sent, else 403; JSON, not a page."""
    if request.identity is None:
        status, code, message = (
            401,
            "unauthorized",
            "send a valid API token: Authorization: Bearer TOKEN",
        )
    else:
        status, code, message = 403, "forbidden", "this token may not do this"
    headers = {"WWW-Authenticate": 'Bearer realm="qicollab"'} if status == 401 else {}
    if _is_fhir(request):
        issue_code = "login" if status == 401 else "forbidden"
        response = fhir_response(status, [fhir.Issue("error", issue_code, message)])
    else:
        response = json_response(status, ApiError(status, code, message).body())
    response.headers.update(headers)
    return response


@notfound_view_config(path_info=API_PATHS)
def api_not_found(request: Request) -> Response:
    """Unknown API paths answer 404 in JSON; a known path with an undeclared method 405."""
    allowed = _declared_methods(request)
    if allowed and request.method not in allowed:
        message = f"{request.method} is not allowed here; use {', '.join(allowed)}"
        headers = {"Allow": ", ".join(allowed)}
        if _is_fhir(request):
            response = fhir_response(405, [fhir.Issue("error", "not-supported", message)])
            response.headers.update(headers)
            return response
        body = ApiError(405, "method_not_allowed", message).body()
        return json_response(405, body, headers=headers)
    # The path is not quoted back: it is whatever the client typed.
    message = f"no such endpoint: {request.method} (see /api/openapi.json)"
    if request.matched_route is not None:  # the path is known; the item is not (or not yours)
        message = "no such item"
    if _is_fhir(request):
        return fhir_response(404, [fhir.Issue("error", "not-found", message)])
    return json_response(404, ApiError(404, "not_found", message).body())


@functools.cache
def _methods_by_path() -> dict[str, tuple[str, ...]]:
    paths = json.loads(_spec_json())["paths"]
    verbs = ("get", "put", "post", "delete", "patch", "head", "options")
    return {path: tuple(v.upper() for v in verbs if v in item) for path, item in paths.items()}


def _declared_methods(request: Request) -> tuple[str, ...]:
    """The methods the document declares for the route the request matched (none: no route)."""
    route = request.matched_route
    if route is None:
        return ()
    declared = _methods_by_path().get(route.pattern, ())
    return (*declared, "HEAD") if "GET" in declared and "HEAD" not in declared else declared


@exception_view_config(RequestValidationError, path_info=API_PATHS)
def api_request_invalid(exc: RequestValidationError, request: Request) -> Response:
    """A request that does not match the document: 400 (401 for a missing bearer token)."""
    from openapi_core.validation.request.exceptions import SecurityValidationError  # noqa: PLC0415

    status = 401 if any(isinstance(e, SecurityValidationError) for e in exc.errors) else 400
    extract = request.registry.settings["pyramid_openapi3_extract_errors"]
    # openapi-core quotes the offending value in its messages ("'123-45-6789' is too long"):
    # scrubbed, so an identifier sent in the wrong place is not echoed back.
    errors = [
        {key: scrub(str(value)) for key, value in error.items() if key in {"field", "message"}}
        for error in extract(request, exc.errors)
    ]
    headers = {"WWW-Authenticate": 'Bearer realm="qicollab"'} if status == 401 else {}
    if _is_fhir(request):
        issues = [
            fhir.Issue(
                "error",
                "security" if status == 401 else "invalid",
                e["message"],
                (e["field"],) if e.get("field") else (),
            )
            for e in errors
        ]
        return fhir_response(status, issues)
    message = (
        "send a valid API token: Authorization: Bearer TOKEN"
        if status == 401
        else ("the request does not match the API description (/api/openapi.json)")
    )
    code = "unauthorized" if status == 401 else "bad_request"
    return json_response(
        status, ApiError(status, code, message, errors=errors).body(), headers=headers
    )


@exception_view_config(ResponseValidationError, path_info=API_PATHS)
def api_response_invalid(exc: ResponseValidationError, request: Request) -> Response:
    """Our response broke the document: log it, answer 500 without echoing the body."""
    log.error("API response failed validation on %s %s: %s", request.method, request.path, exc)
    message = "the server produced an invalid response; it has been logged"
    if _is_fhir(request):
        return fhir_response(500, [fhir.Issue("fatal", "exception", message)])
    return json_response(500, {"status": 500, "code": "server_error", "message": message})
