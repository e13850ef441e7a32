"""improvement domain: change package, PDSA cycles, progress scores, monthly team reports,
learning-session agendas, material and attendance, and the best-practice comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator

MEMBER_FACTORY = "qicollab.resources.member_factory"


def includeme(config: Configurator) -> None:
    """The improvement pages and the PDSA API (validated against the API's OpenAPI document)."""
    member_routes = (
        # "/pdsa/new" before "/pdsa/{pdsa_id}": routes match in the order they are added.
        ("improvement.pdsa_list", "/members/{member_id}/pdsa"),
        ("improvement.pdsa_new", "/members/{member_id}/pdsa/new"),
        ("improvement.pdsa_detail", "/members/{member_id}/pdsa/{pdsa_id}"),
        ("improvement.pdsa_edit", "/members/{member_id}/pdsa/{pdsa_id}/edit"),
        ("improvement.pdsa_delete", "/members/{member_id}/pdsa/{pdsa_id}/delete"),
        ("improvement.progress", "/members/{member_id}/progress"),
    )
    for name, pattern in member_routes:
        config.add_route(name, pattern, factory=MEMBER_FACTORY)
    config.add_route("improvement.teams", "/improvement/teams")
    config.add_route("improvement.package", "/change-package")
    config.add_route("improvement.sessions", "/learning-sessions")
    config.add_route("improvement.session", "/learning-sessions/{session_id}")
    config.add_route("improvement.best_practice", "/best-practice")
    config.add_route("api.pdsa_list", "/api/pdsa")
    config.add_route("api.pdsa", "/api/pdsa/{pdsa_id}")
    config.scan("qicollab.improvement.views")
    config.scan("qicollab.improvement.api")
