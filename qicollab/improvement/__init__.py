"""improvement domain: change package, PDSA cycles, progress scores, monthly team reports,
learning-session agendas, material and attendance, and the best-practice comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator

MEMBER_FACTORY = "qicollab.resources.member_factory"
PDSA_FACTORY = "qicollab.improvement.resources.pdsa_factory"


def includeme(config: Configurator) -> None:
    """The improvement services, pages and the PDSA API (validated against the API's OpenAPI
    document)."""
    from qicollab.improvement.package import ChangePackageService  # noqa: PLC0415
    from qicollab.improvement.pdsa import PdsaService  # noqa: PLC0415
    from qicollab.improvement.progress import ProgressService  # noqa: PLC0415
    from qicollab.improvement.sessions import SessionService  # noqa: PLC0415
    from qicollab.services import collaborative_service  # noqa: PLC0415

    for service in (PdsaService, ProgressService, SessionService, ChangePackageService):
        config.register_service_factory(collaborative_service(service), iface=service)
    member_routes = (
        # "/pdsa/new" before "/pdsa/{pdsa_id}": routes match in the order they are added.
        ("improvement.pdsa_list", "/members/{member_id}/pdsa", MEMBER_FACTORY),
        ("improvement.pdsa_new", "/members/{member_id}/pdsa/new", MEMBER_FACTORY),
        ("improvement.pdsa_detail", "/members/{member_id}/pdsa/{pdsa_id}", PDSA_FACTORY),
        ("improvement.pdsa_edit", "/members/{member_id}/pdsa/{pdsa_id}/edit", PDSA_FACTORY),
        ("improvement.pdsa_delete", "/members/{member_id}/pdsa/{pdsa_id}/delete", PDSA_FACTORY),
        ("improvement.progress", "/members/{member_id}/progress", MEMBER_FACTORY),
    )
    for name, pattern, factory in member_routes:
        config.add_route(name, pattern, factory=factory)
    config.add_route("improvement.teams", "/improvement/teams")
    config.add_route("improvement.package", "/change-package")
    config.add_route("improvement.sessions", "/learning-sessions")
    config.add_route(
        "improvement.session",
        "/learning-sessions/{session_id}",
        factory="qicollab.improvement.resources.session_factory",
    )
    config.add_route("improvement.best_practice", "/best-practice")
    config.add_route("api.pdsa_list", "/api/pdsa")
    config.add_route(
        "api.pdsa",
        "/api/pdsa/{pdsa_id}",
        factory="qicollab.improvement.resources.readable_pdsa_factory",
    )
    config.scan("qicollab.improvement.views")
    config.scan("qicollab.improvement.api")
