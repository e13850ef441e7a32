"""api domain: the JSON submission API and FHIR MeasureReport import, under ``/api/``.

pyramid_openapi3 validates requests and responses only of views marked ``openapi=True``, all of
them here; the portal's pages are untouched (its response tween returns them unchecked).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from openapi_core.deserializing.media_types.util import json_loads

if TYPE_CHECKING:
    from pyramid.config import Configurator

SPEC = Path(__file__).with_name("openapi.yaml")


def includeme(config: Configurator) -> None:
    """The OpenAPI document, the API routes and their views."""
    config.include("pyramid_openapi3")
    # FHIR bodies are JSON under their own media type; openapi-core must read them as JSON.
    config.pyramid_openapi3_add_deserializer("application/fhir+json", json_loads)
    config.pyramid_openapi3_spec(
        str(SPEC), route="/api/openapi.yaml", route_name="api.openapi_yaml"
    )
    config.add_route("api.openapi_json", "/api/openapi.json")
    config.add_route("api.me", "/api/me")
    config.add_route("api.measures", "/api/measures")
    config.add_route("api.measure", "/api/measures/{code}")
    config.add_route("api.periods", "/api/measures/{code}/periods")
    # The literal paths before "/api/submissions/{submission_id}": routes match in order.
    config.add_route("api.submit_aggregate", "/api/submissions/aggregate")
    config.add_route("api.submit_patient", "/api/submissions/patient")
    config.add_route("api.submissions", "/api/submissions")
    config.add_route(
        "api.submission",
        "/api/submissions/{submission_id}",
        factory="qicollab.submissions.resources.readable_submission_factory",
    )
    config.add_route("api.fhir_measure_report", "/api/fhir/MeasureReport")
    config.scan("qicollab.api.views")
