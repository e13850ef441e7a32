"""The measure catalogue in the portal: every signed-in user reads it, coordinators edit it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pyramid.httpexceptions import HTTPFound, HTTPNotFound
from pyramid.view import view_config

from qicollab.audit.services import record
from qicollab.measures.models import DataLevel, Direction, MeasureType
from qicollab.measures.services import CHART_CHOICES, MeasureDraft, MeasureError, MeasureService
from qicollab.measures.spec import RiskModelSpec
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.measures.models import Measure


def _service(request: Request) -> MeasureService:
    return request.find_service(MeasureService)


def _measure_or_404(request: Request) -> Measure:
    measure = _service(request).by_code(request.matchdict["code"])
    if measure is None:
        raise HTTPNotFound
    return measure


@view_config(
    route_name="measures.list",
    renderer="catalogue/measures.jinja2",
    permission=Permission.COLLABORATIVE_READ,
)
def measure_list(request: Request) -> dict[str, Any]:
    """The catalogue."""
    return {"measures": _service(request).measures()}


@view_config(
    route_name="measures.detail",
    renderer="catalogue/measure.jinja2",
    permission=Permission.COLLABORATIVE_READ,
)
def measure_detail(request: Request) -> dict[str, Any]:
    """One measure's definitions and, for patient-level measures, its risk model."""
    measure = _measure_or_404(request)
    spec = RiskModelSpec.from_json(measure.risk_model) if measure.risk_model else None
    return {"measure": measure, "spec": spec}


def _form_context(values: dict[str, Any], error: MeasureError | None) -> dict[str, Any]:
    return {
        "values": values,
        "error": error,
        "types": [t.value for t in MeasureType],
        "levels": [level.value for level in DataLevel],
        "directions": [d.value for d in Direction],
        "charts": CHART_CHOICES,
    }


def _values_of(measure: Measure | None) -> dict[str, Any]:
    if measure is None:
        return {"multiplier": 1.0, "minimum_volume": 0, "risk_model": ""}
    return {
        "code": measure.code,
        "title": measure.title,
        "description": measure.description,
        "measure_type": measure.measure_type.value,
        "level": measure.level.value,
        "direction": measure.direction.value,
        "numerator_definition": measure.numerator_definition,
        "denominator_definition": measure.denominator_definition,
        "exclusion_definition": measure.exclusion_definition,
        "unit": measure.unit,
        "multiplier": measure.multiplier,
        "target": "" if measure.target is None else measure.target,
        "minimum_volume": measure.minimum_volume,
        "chart_override": measure.chart_override or "",
        "risk_model": json.dumps(measure.risk_model, indent=2) if measure.risk_model else "",
    }


def _draft_from(post: dict[str, str]) -> MeasureDraft:
    def number(field: str, kind: type, default: Any) -> Any:
        raw = post.get(field, "").strip()
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError as error:
            raise MeasureError(field, f"{raw!r} is not a number") from error

    raw_model = post.get("risk_model", "").strip()
    try:
        risk_model = json.loads(raw_model) if raw_model else None
    except json.JSONDecodeError as error:
        reason = f"not valid JSON ({error.msg}, line {error.lineno})"
        raise MeasureError("risk_model", reason) from error
    return MeasureDraft(
        code=post.get("code", ""),
        title=post.get("title", ""),
        description=post.get("description", ""),
        measure_type=post.get("measure_type", ""),
        level=post.get("level", ""),
        direction=post.get("direction", ""),
        numerator_definition=post.get("numerator_definition", ""),
        denominator_definition=post.get("denominator_definition", ""),
        exclusion_definition=post.get("exclusion_definition", ""),
        unit=post.get("unit", ""),
        multiplier=number("multiplier", float, 1.0),
        target=number("target", float, None),
        minimum_volume=number("minimum_volume", int, 0),
        chart_override=post.get("chart_override") or None,
        risk_model=risk_model,
    )


@view_config(
    route_name="measures.new",
    renderer="catalogue/measure_form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
@view_config(
    route_name="measures.edit",
    renderer="catalogue/measure_form.jinja2",
    permission=Permission.COLLABORATIVE_MANAGE,
)
def measure_form(request: Request) -> Any:
    """Create or edit a measure; errors are shown beside the field and nothing is saved."""
    measure = _measure_or_404(request) if "code" in request.matchdict else None
    if request.method != "POST":
        return _form_context(_values_of(measure), None)
    post = dict(request.POST)
    try:
        saved = _service(request).save(_draft_from(post), measure)
    except MeasureError as error:
        request.response.status = 422
        return _form_context(post, error)
    record(
        request.db,
        "measure.updated" if measure else "measure.created",
        actor=request.identity,
        object_type="measure",
        object_id=saved.code,
        ip_address=request.client_addr,
    )
    return HTTPFound(request.route_url("measures.detail", code=saved.code))
