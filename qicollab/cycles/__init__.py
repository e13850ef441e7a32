"""cycles domain: learning cycles, submission windows, review, reopenings and completeness."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator

MEMBER_FACTORY = "qicollab.resources.member_factory"


def includeme(config: Configurator) -> None:
    """The cycle service, the workflow's routes and views (annotations are a service,
    without routes here)."""
    from qicollab.cycles.services import CycleService, factory  # noqa: PLC0415

    config.register_service_factory(factory, iface=CycleService)
    # "/cycles/new" before "/cycles/{code}": routes match in the order they are added.
    config.add_route("cycles.list", "/cycles")
    config.add_route("cycles.new", "/cycles/new")
    config.add_route("cycles.detail", "/cycles/{code}")
    config.add_route("cycles.edit", "/cycles/{code}/edit")
    config.add_route("cycles.transition", "/cycles/{code}/status")
    config.add_route("cycles.job", "/cycles/{code}/jobs/{work}")
    config.add_route("cycles.reopen", "/cycles/{code}/reopenings")
    config.add_route("cycles.sessions", "/cycles/{code}/sessions")
    config.add_route("cycles.review_queue", "/review")
    config.add_route("cycles.review_many", "/review/decisions")
    config.add_route(
        "cycles.review",
        "/submissions/{submission_id}/review",
        factory="qicollab.submissions.resources.submission_factory",
    )
    config.add_route("cycles.completeness", "/completeness")
    config.add_route("cycles.completeness_export", "/completeness.csv")
    config.add_route(
        "cycles.member_completeness", "/members/{member_id}/completeness", factory=MEMBER_FACTORY
    )
    config.add_route(
        "cycles.member_completeness_export",
        "/members/{member_id}/completeness.csv",
        factory=MEMBER_FACTORY,
    )
    config.scan("qicollab.cycles.views")
