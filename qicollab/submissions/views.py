"""Portal pages for submitting a member's data: templates, upload -> preview -> commit, form.

Views stay thin: find the member and measure, call :class:`SubmissionService`, render. Reading
needs ``MEMBER_VIEW``; writing needs ``MEMBER_SUBMIT`` (the member's quality officers) or
``COLLABORATIVE_MANAGE`` on the member (coordinators submitting on a member's behalf), checked by
:func:`require_submit` because a view names only one permission. The member comes loaded in the
context (:func:`qicollab.resources.member_factory`: another collaborative's is 404, like an
unknown one).

Refusals (PHI, parse errors, invalid data) are rendered, not raised, with status 422: nothing
was written by the service, and returning lets the audit record of the refusal commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from qicollab.audit.services import record
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.resources import can_submit
from qicollab.submissions import grid, identifiers, templates
from qicollab.submissions.errors import (
    JustificationRequiredError,
    ParseError,
    PHIRefusedError,
    ReasonRequiredError,
    SubmissionError,
    WindowClosedError,
)
from qicollab.submissions.models import SubmissionSource
from qicollab.submissions.resources import active_measure
from qicollab.submissions.services import PlanAction, SubmissionService
from qicollab.submissions.uploads import UploadStore

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.resources import MemberResource
    from qicollab.submissions.resources import BatchResource, MeasureResource


# --- helpers --------------------------------------------------------------------------------------


def service_for(request: Request) -> SubmissionService:
    """The submission service of this request (registered by the domain's includeme)."""
    return request.find_service(SubmissionService)


def upload_store(request: Request) -> UploadStore:
    """Uploads waiting for their commit, in the file store (inside the request's transaction)."""
    return UploadStore(request.file_store)


def require_submit(request: Request, context: MemberResource) -> None:
    """403 unless the user may submit for this member."""
    if not can_submit(request, context):
        raise HTTPForbidden


def _measures(request: Request, member: Member) -> list[Measure]:
    return list(
        request.db.scalars(
            sa.select(Measure)
            .where(Measure.collaborative_id == member.collaborative_id, Measure.active.is_(True))
            .order_by(Measure.code)
        )
    )


def _base(request: Request, context: MemberResource, member: Member) -> dict[str, Any]:
    return {
        "member": member,
        "csrf_token": get_csrf_token(request),
        "can_submit": can_submit(request, context),
    }


def _refusal_page(
    request: Request,
    context: MemberResource,
    member: Member,
    error: SubmissionError,
    *,
    measure: Measure | None,
    filename: str,
) -> dict[str, Any]:
    request.response.status = 422
    refused = isinstance(error, PHIRefusedError)
    if refused:
        # Kinds and counts only: no file name, no value, nothing of the content.
        record(
            request.db,
            "submission.refused",
            actor=request.identity,
            object_type="member",
            object_id=member.id,
            member_id=member.id,
            ip_address=request.client_addr,
            details={
                "measure": measure.code if measure else None,
                "rules": sorted({problem.rule for problem in error.problems}),
                "cells": len(error.problems),
            },
        )
    request.override_renderer = "submissions/refused.jinja2"
    return {
        **_base(request, context, member),
        "measure": measure,
        "refused": refused,
        "error": error,
        "problems": error.problems,
        "others": error.others if isinstance(error, PHIRefusedError) else (),
        "filename": "" if refused else filename,
    }


# --- pages ---------------------------------------------------------------------------------------


@view_config(
    route_name="submissions.portal",
    renderer="submissions/portal.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def portal(context: MemberResource, request: Request) -> dict[str, Any]:
    """The member's submission page: templates, windows, the upload form, recent versions."""
    member = context.member
    service = service_for(request)
    measures = []
    for measure in _measures(request, member):
        open_periods = service.open_periods(member, measure)
        measures.append({"measure": measure, "open_periods": open_periods})
    return {
        **_base(request, context, member),
        "measures": measures,
        "max_mib": service.limits.max_bytes / (1024 * 1024),
        "versions": service.versions(member)[:20],
    }


@view_config(
    route_name="submissions.template", permission=Permission.MEMBER_VIEW, request_method="GET"
)
def template(context: MeasureResource, request: Request) -> Response:
    """The measure's CSV or XLSX template, for this member's de-identification profile."""
    member, measure = context.member, context.measure
    extension = request.matchdict.get("ext")
    layout = service_for(request).layout(member, measure)
    definitions = {
        "Measure": measure.description or measure.title,
        "Numerator": measure.numerator_definition,
        "Denominator": measure.denominator_definition,
        "Exclusions": measure.exclusion_definition,
    }
    filename = templates.template_filename(layout, extension or "")
    if extension == "csv":
        body, content_type = templates.csv_template(layout), "text/csv; charset=utf-8"
    elif extension == "txt":
        body = templates.csv_guide(layout, definitions=definitions)
        content_type, filename = "text/plain; charset=utf-8", templates.guide_filename(layout)
    elif extension == "xlsx":
        body = templates.xlsx_template(layout, definitions=definitions)
        content_type = templates.XLSX_CONTENT_TYPE
    else:
        raise HTTPNotFound
    record(
        request.db,
        "template.downloaded",
        actor=request.identity,
        object_type="measure",
        object_id=measure.id,
        member_id=member.id,
        ip_address=request.client_addr,
        details={"measure": measure.code, "format": extension},
    )
    return _download(body, content_type, filename)


def _download(body: bytes, content_type: str, filename: str) -> Response:
    response = Response(body=body, content_type=content_type.split(";", maxsplit=1)[0])
    if "charset" in content_type:
        response.charset = "utf-8"
    response.content_disposition = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.cache_control = "no-store"
    return response


@view_config(
    route_name="submissions.upload",
    renderer="submissions/refused.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="POST",
    require_csrf=True,
)
def upload(context: MemberResource, request: Request) -> Any:
    """Store an upload that passed the PHI screen and show its preview (POST-redirect-GET)."""
    member = context.member
    require_submit(request, context)
    measure = active_measure(request, member, request.POST.get("measure"))
    service = service_for(request)
    field = request.POST.get("file")
    if field is None or not hasattr(field, "file"):
        error = ParseError("choose a file to upload", rule="no_file", fix="Choose a file.")
        return _refusal_page(request, context, member, error, measure=measure, filename="")
    data = field.file.read(service.limits.max_bytes + 1)
    # The name a person gave the file can identify ("John Smith.csv"): only its extension is
    # kept, from the first moment on (messages, the pending upload, the stored batch).
    filename = identifiers.opaque_filename(
        str(getattr(field, "filename", "") or "upload"), hashlib.sha256(data).hexdigest()[:12]
    )
    try:
        service.preview(member=member, measure=measure, data=data, filename=filename)
    except SubmissionError as error:
        return _refusal_page(request, context, member, error, measure=measure, filename=filename)
    token = upload_store(request).put(
        member_id=member.id, measure_code=measure.code, filename=filename, data=data
    )
    return HTTPSeeOther(request.route_url("submissions.preview", member_id=member.id, token=token))


def _stored(request: Request, member: Member) -> Any:
    stored = upload_store(request).get(request.matchdict.get("token", ""), member_id=member.id)
    if stored is None:
        raise HTTPNotFound
    return stored


@view_config(
    route_name="submissions.preview",
    renderer="submissions/preview.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def preview(context: MemberResource, request: Request) -> dict[str, Any]:
    """The dry run of a stored upload: rows read, add/replace per period, problems."""
    member = context.member
    require_submit(request, context)
    stored = _stored(request, member)
    measure = active_measure(request, member, stored.measure_code)
    service = service_for(request)
    try:
        result = service.preview(
            member=member, measure=measure, data=stored.data, filename=stored.filename
        )
    except SubmissionError as error:
        return _refusal_page(
            request, context, member, error, measure=measure, filename=stored.filename
        )
    return {
        **_base(request, context, member),
        "measure": measure,
        "stored": stored,
        "result": result,
        "actions": PlanAction,
        "message": None,
    }


@view_config(
    route_name="submissions.commit",
    renderer="submissions/preview.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="POST",
    require_csrf=True,
)
def commit(context: MemberResource, request: Request) -> Any:
    """Commit a previewed upload, all or nothing; on refusal show the preview again."""
    member = context.member
    require_submit(request, context)
    stored = _stored(request, member)
    measure = active_measure(request, member, stored.measure_code)
    service = service_for(request)
    store = upload_store(request)
    try:
        result = service.commit(
            member=member,
            measure=measure,
            data=stored.data,
            filename=stored.filename,
            actor=request.identity,
            reason=request.POST.get("reason"),
            justification=request.POST.get("justification"),
            ip_address=request.client_addr,
        )
    except (JustificationRequiredError, ReasonRequiredError, WindowClosedError) as error:
        request.response.status = 422
        return {
            **_base(request, context, member),
            "measure": measure,
            "stored": stored,
            "result": service.preview(
                member=member, measure=measure, data=stored.data, filename=stored.filename
            ),
            "actions": PlanAction,
            "message": error.message,
        }
    except SubmissionError as error:
        return _refusal_page(
            request, context, member, error, measure=measure, filename=stored.filename
        )
    store.delete(stored.token)
    if result.batch_id is None:
        return HTTPSeeOther(request.route_url("submissions.history", member_id=member.id))
    return HTTPSeeOther(
        request.route_url("submissions.batch", member_id=member.id, batch_id=result.batch_id)
        + ("?duplicate=1" if result.duplicate else "")
    )


@view_config(
    route_name="submissions.errors", permission=Permission.MEMBER_VIEW, request_method="GET"
)
def error_report(context: MemberResource, request: Request) -> Response:
    """The stored upload with an ``errors`` column, as CSV or XLSX."""
    member = context.member
    require_submit(request, context)
    stored = _stored(request, member)
    measure = active_measure(request, member, stored.measure_code)
    extension = request.matchdict.get("ext")
    if extension not in {"csv", "xlsx"}:
        raise HTTPNotFound
    try:
        report = service_for(request).error_report(
            member=member,
            measure=measure,
            data=stored.data,
            filename=stored.filename,
            fmt=extension,
        )
    except SubmissionError as error:
        return Response(error.message, status=422, content_type="text/plain")
    record(
        request.db,
        "submission.error_report_downloaded",
        actor=request.identity,
        object_type="member",
        object_id=member.id,
        member_id=member.id,
        ip_address=request.client_addr,
        details={"measure": measure.code, "format": extension},
    )
    return _download(report.body, report.content_type, report.filename)


@view_config(
    route_name="submissions.batch",
    renderer="submissions/batch.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def batch(context: BatchResource, request: Request) -> dict[str, Any]:
    """What one upload or form save stored."""
    member, found = context.member, context.batch
    versions = service_for(request).versions(member)
    return {
        **_base(request, context, member),
        "batch": found,
        "measure": request.db.get(Measure, found.measure_id),
        "versions": [v for v in versions if v[0].batch_id == found.id],
        "duplicate": request.GET.get("duplicate") == "1",
    }


@view_config(
    route_name="submissions.history",
    renderer="submissions/history.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
)
def history(context: MemberResource, request: Request) -> dict[str, Any]:
    """Every version of the member's data, with status, reason and predecessor."""
    member = context.member
    return {**_base(request, context, member), "versions": service_for(request).versions(member)}


# --- the data entry grid ------------------------------------------------------------------------


@view_config(
    route_name="submissions.form",
    renderer="submissions/form.jinja2",
    permission=Permission.MEMBER_VIEW,
    request_method=("GET", "POST"),
    require_csrf=True,  # checked on POST only
)
def form(context: MeasureResource, request: Request) -> Any:
    """The grid of periods x fields: save drafts, or submit every changed period at once.

    With scripts on, each row is saved as a draft when the cursor leaves it (``grid_save``);
    this POST is the Submit button, and the whole grid without scripts.
    """
    member, measure = context.member, context.measure
    require_submit(request, context)
    service = service_for(request)
    entry = grid.load_grid(service, member, measure)
    posted: dict[str, str] = {}
    message = None
    if request.method == "POST":
        if not request.POST.get("csrf_token") or request.POST.get("csrf_token") != get_csrf_token(
            request
        ):
            raise HTTPForbidden
        action = "submit" if request.POST.get("action") == "submit" else "draft"
        rows = grid.posted_rows(
            entry, request.POST, against="sent" if action == "submit" else "values"
        )
        if not rows:
            return _back_to_grid(request, member, measure, saved="unchanged")
        try:
            result = service.submit_rows(
                member=member,
                measure=measure,
                rows=rows,
                source=SubmissionSource.FORM,
                actor=request.identity,
                reason=request.POST.get("reason"),
                justification=request.POST.get("justification"),
                draft=action == "draft",
                ip_address=request.client_addr,
            )
        except SubmissionError as error:
            request.response.status = 422
            entry = entry.with_problems([str(row["period"]) for row in rows], error.all_problems)
            message = error.message
            posted = {
                grid.cell_name(str(row["period"]), name): str(value)
                for row in rows
                for name, value in row.items()
                if name != "period"
            }
        else:
            saved = "unchanged" if result.duplicate else action
            return _back_to_grid(request, member, measure, saved=saved, count=len(rows))
    return {
        **_base(request, context, member),
        "measure": measure,
        "layout": service.layout(member, measure),
        "grid": entry,
        "posted": posted,
        "cell_name": grid.cell_name,
        "shown_value": grid.shown_value,
        "message": message,
        "saved": request.GET.get("saved"),
        "count": request.GET.get("count"),
        "focus": request.GET.get("period"),
    }


def _back_to_grid(
    request: Request, member: Member, measure: Measure, *, saved: str, count: int = 0
) -> HTTPSeeOther:
    query = {"saved": saved, "count": str(count)}
    return HTTPSeeOther(
        request.route_url(
            "submissions.form", member_id=member.id, measure_code=measure.code, _query=query
        )
    )


def _problem_json(problem: Any, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "column": problem.column,
        "label": labels.get(problem.column or "", problem.column or ""),
        "severity": problem.severity.value,
        "rule": problem.rule,
        "message": problem.message,
        "fix": problem.fix,
    }


@view_config(
    route_name="submissions.grid_save",
    renderer="json",
    permission=Permission.MEMBER_VIEW,
    request_method="POST",
    require_csrf=True,
)
def grid_save(context: MeasureResource, request: Request) -> dict[str, Any]:
    """Save one row of the grid as a draft when the cursor leaves it, as DHIS2 saves a cell.

    The row gets the upload checks first; cells come back ``saved``, ``invalid``, ``warning``
    or ``locked``. A row with blocking errors is not saved (its draft, if any, stays).
    """
    member, measure = context.member, context.measure
    require_submit(request, context)
    service = service_for(request)
    entry = grid.load_grid(service, member, measure)
    try:
        payload = request.json_body
    except ValueError:
        payload = None
    sent = payload.get("values") if isinstance(payload, dict) else None
    row = entry.row(str(payload.get("period"))) if isinstance(sent, dict) else None
    if row is None:
        request.response.status = 400
        return {"status": "invalid", "message": "send {period, values} for a period of the grid"}
    if row.locked:
        request.response.status = 409
        cells = dict.fromkeys(entry.fields, grid.CellState.LOCKED.value)
        return {"status": "locked", "message": row.window.reason, "cells": cells}
    values = {
        name: str(sent.get(name) if isinstance(sent.get(name), str | int | float) else "").strip()
        for name in entry.fields
    }
    rows: list[dict[str, object]] = [{"period": row.period, **values}]
    status = "unchanged" if values == dict(row.values) else "saved"
    try:
        problems = list(service.preview_rows(member=member, measure=measure, rows=rows).problems)
        if status == "saved":
            service.submit_rows(
                member=member,
                measure=measure,
                rows=rows,
                source=SubmissionSource.FORM,
                actor=request.identity,
                draft=True,
                ip_address=request.client_addr,
            )
    except SubmissionError as error:
        request.response.status = 422
        problems, status = list(error.all_problems), "invalid"
    saved = status == "saved"
    shown = dataclasses.replace(
        row, values=values if saved else row.values, has_draft=row.has_draft or saved
    )
    checked = entry.with_problems([row.period], problems)
    layout = service.layout(member, measure)
    labels = {column.name: column.label for column in layout.columns}
    return {
        "status": status,
        "summary": shown.summary,
        "cells": {name: checked.state(shown, name, values[name]).value for name in entry.fields},
        "shown": grid.shown_value(layout, values),
        "problems": [_problem_json(problem, labels) for problem in problems],
    }


@view_config(
    route_name="submissions.validate",
    renderer="json",
    permission=Permission.MEMBER_VIEW,
    request_method="POST",
    require_csrf=True,
)
def validate_cells(context: MeasureResource, request: Request) -> dict[str, Any]:
    """As-you-type checks of the form: the same validation, nothing written."""
    member, measure = context.member, context.measure
    require_submit(request, context)
    try:
        payload = request.json_body
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        request.response.status = 400
        return {"ok": False, "problems": [], "message": "send a JSON object of field values"}
    layout_names = service_for(request).layout(member, measure).names
    row = {
        key: value
        for key, value in payload.items()
        if key in layout_names and (value is None or isinstance(value, str | int | float))
    }
    try:
        result = service_for(request).preview_rows(
            member=member, measure=measure, rows=[row], source=SubmissionSource.FORM
        )
    except SubmissionError as error:
        return {
            "ok": False,
            "problems": [problem.to_json() for problem in error.all_problems],
            "message": error.message,
        }
    plan = result.periods[0] if result.periods else None
    return {
        "ok": result.ok,
        "problems": [problem.to_json() for problem in result.problems],
        "action": plan.action.value if plan else None,
        "checked_at": dt.datetime.now(dt.UTC).isoformat(),
    }
