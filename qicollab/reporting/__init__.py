"""Reporting: dashboards, SVG charts, PDF reports, blinding and small-cell suppression."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator

MEMBER_FACTORY = "qicollab.resources.member_factory"


def includeme(config: Configurator) -> None:
    """Results pages, exports, the FHIR API, report listings and audited downloads."""
    member_routes = (
        ("reporting.member_results", "/members/{member_id}/results"),
        ("reporting.member_export", "/members/{member_id}/results.{ext:csv|xlsx}"),
        ("reporting.fhir", "/api/members/{member_id}/measure-reports"),
    )
    for name, pattern in member_routes:
        config.add_route(name, pattern, factory=MEMBER_FACTORY)
    config.add_route("reporting.overview", "/results")
    config.add_route("reporting.overview_export", "/results.{ext:csv|xlsx}")
    config.add_route(
        "reporting.run_reports",
        "/runs/{run_id}/reports",
        factory="qicollab.reporting.resources.run_factory",
    )
    config.add_route(
        "reporting.download",
        "/reports/{report_id}/download",
        factory="qicollab.reporting.resources.report_factory",
    )
    config.add_static_view("reporting-static", "qicollab.reporting:static", cache_max_age=3600)
    config.scan("qicollab.reporting.views")
