"""The PDSA API: ``/api/pdsa`` lists and records a team's cycles, ``/api/pdsa/{id}`` reads,
replaces or deletes one. The same service as the portal: the same checks, the same chart markers,
the same audit. An officer's token acts for its own team; coordinators name the member and may read.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.response import Response
from pyramid.view import view_config

from qicollab.api.views import ApiError, api_view, json_response, resolve_member
from qicollab.improvement.models import ChangeIdea, ChangePackage, PdsaCycle
from qicollab.improvement.pdsa import PdsaDraft, PdsaService, change_label, stage
from qicollab.improvement.text import ImprovementError
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.resources import can_submit

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.improvement.resources import PdsaResource


def pdsa_json(cycle: PdsaCycle, member_code: str) -> dict[str, Any]:
    """The ``Pdsa`` schema."""

    def day(value: dt.date | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": cycle.id,
        "member": member_code,
        "title": cycle.title,
        "stage": stage(cycle),
        "change": change_label(cycle),
        "change_idea": cycle.change_idea.code if cycle.change_idea else None,
        "own_change": cycle.own_change,
        "follows": cycle.follows_id,
        "measures": [m.code for m in cycle.measures],
        "objective": cycle.objective,
        "prediction": cycle.prediction,
        "starts_on": cycle.starts_on.isoformat(),
        "ends_on": day(cycle.ends_on),
        "what_was_done": cycle.what_was_done,
        "observations": cycle.observations,
        "study": cycle.study,
        "decision": cycle.decision.value if cycle.decision else None,
        "decided_on": day(cycle.decided_on),
        "next_steps": cycle.next_steps,
        "starts_phase": cycle.starts_phase,
    }


def _draft(request: Request, member: Member) -> PdsaDraft:
    """The validated body as a draft; codes become ids (unknown codes are 422)."""
    body = request.openapi_validated.body
    measure_ids = []
    for code in body.get("measures", []):
        measure_id = request.db.scalar(
            sa.select(Measure.id).where(
                Measure.collaborative_id == member.collaborative_id, Measure.code == code
            )
        )
        if measure_id is None:
            raise ApiError(422, "invalid", f"no measure {code!r}")
        measure_ids.append(measure_id)
    idea_id = None
    if body.get("change_idea"):
        idea_id = request.db.scalar(
            sa.select(ChangeIdea.id)
            .join(ChangePackage, ChangePackage.id == ChangeIdea.package_id)
            .where(
                ChangePackage.collaborative_id == member.collaborative_id,
                ChangeIdea.code == body["change_idea"].strip().upper(),
            )
        )
        if idea_id is None:
            raise ApiError(422, "invalid", f"no change idea {body['change_idea']!r}")

    def day(name: str) -> dt.date | None:
        raw = body.get(name)
        if raw is None or isinstance(raw, dt.date):  # openapi-core parses format: date
            return raw
        try:
            return dt.date.fromisoformat(raw)
        except ValueError as error:
            raise ApiError(422, "invalid", f"{name} is not a date (YYYY-MM-DD)") from error

    return PdsaDraft(
        title=body["title"],
        starts_on=day("starts_on"),
        ends_on=day("ends_on"),
        measure_ids=tuple(measure_ids),
        change_idea_id=idea_id,
        own_change=body.get("own_change", ""),
        follows_id=body.get("follows"),
        objective=body.get("objective", ""),
        prediction=body.get("prediction", ""),
        what_was_done=body.get("what_was_done", ""),
        observations=body.get("observations", ""),
        study=body.get("study", ""),
        decision=body.get("decision"),
        decided_on=day("decided_on"),
        next_steps=body.get("next_steps", ""),
        starts_phase=bool(body.get("starts_phase", False)),
    )


def _refused(error: ImprovementError) -> ApiError:
    errors = [{"field": error.field, "message": str(error)}] if error.field else []
    return ApiError(422, "invalid", str(error), errors=errors)


@view_config(
    route_name="api.pdsa_list",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="GET",
    require_csrf=False,
)
@api_view
def list_pdsa(request: Request) -> Response:
    """The team's cycles, newest first."""
    query = request.openapi_validated.parameters.query
    member = resolve_member(request, query.get("member"), Permission.MEMBER_VIEW)
    cycles = request.find_service(PdsaService).for_member(member.id)
    return json_response(
        200, {"member": member.code, "cycles": [pdsa_json(c, member.code) for c in cycles]}
    )


@view_config(
    route_name="api.pdsa_list",
    openapi=True,
    permission=Permission.COLLABORATIVE_READ,
    request_method="POST",
    require_csrf=False,
)
@api_view
def create_pdsa(request: Request) -> Response:
    """Record a cycle for the token's team (coordinators: for no team; they read only)."""
    query = request.openapi_validated.parameters.query
    member = resolve_member(request, query.get("member"), Permission.MEMBER_SUBMIT)
    try:
        cycle = request.find_service(PdsaService).create(
            member.id, _draft(request, member), actor=request.identity
        )
    except ImprovementError as error:
        raise _refused(error) from error
    return json_response(201, pdsa_json(cycle, member.code))


def _cycle(request: Request, permission: Permission) -> tuple[PdsaCycle, Member]:
    """The cycle of the context (404 already when the token may not read it); writing needs
    the team's officers or a coordinator."""
    context: PdsaResource = request.context
    if permission is Permission.MEMBER_SUBMIT and not can_submit(request, context):
        raise ApiError(403, "forbidden", "this token may read but not submit")
    return context.cycle, context.member


@view_config(
    route_name="api.pdsa",
    openapi=True,
    permission=Permission.MEMBER_VIEW,
    request_method="GET",
    require_csrf=False,
)
@api_view
def get_pdsa(request: Request) -> Response:
    """One cycle of the token's team."""
    cycle, member = _cycle(request, Permission.MEMBER_VIEW)
    return json_response(200, pdsa_json(cycle, member.code))


@view_config(
    route_name="api.pdsa",
    openapi=True,
    permission=Permission.MEMBER_VIEW,
    request_method="PUT",
    require_csrf=False,
)
@api_view
def replace_pdsa(request: Request) -> Response:
    """Save the cycle's new version (the whole record, as the portal's edit form sends it)."""
    cycle, member = _cycle(request, Permission.MEMBER_SUBMIT)
    try:
        request.find_service(PdsaService).update(
            cycle, _draft(request, member), actor=request.identity
        )
    except ImprovementError as error:
        raise _refused(error) from error
    return json_response(200, pdsa_json(cycle, member.code))


@view_config(
    route_name="api.pdsa",
    openapi=True,
    permission=Permission.MEMBER_VIEW,
    request_method="DELETE",
    require_csrf=False,
)
@api_view
def delete_pdsa(request: Request) -> Response:
    """Delete a cycle recorded by mistake (its chart markers too; audited): the team's
    officers, or the collaborative's coordinators."""
    cycle, _member = _cycle(request, Permission.MEMBER_SUBMIT)
    request.find_service(PdsaService).delete(cycle, actor=request.identity)
    return Response(status=204)
