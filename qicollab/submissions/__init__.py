"""submissions domain: templates, uploads, PHI screening, validation, versioned commits."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator

MEMBER_FACTORY = "qicollab.resources.member_factory"


def includeme(config: Configurator) -> None:
    """The submission service, the member's submission routes, and their views."""
    from qicollab.submissions.services import SubmissionService, factory  # noqa: PLC0415

    config.register_service_factory(factory, iface=SubmissionService)
    routes = (
        ("submissions.portal", "/members/{member_id}/submit"),
        ("submissions.history", "/members/{member_id}/submissions"),
        ("submissions.upload", "/members/{member_id}/uploads"),
        ("submissions.preview", "/members/{member_id}/uploads/{token}"),
        ("submissions.commit", "/members/{member_id}/uploads/{token}/commit"),
        ("submissions.errors", "/members/{member_id}/uploads/{token}/errors.{ext}"),
    )
    for name, pattern in routes:
        config.add_route(name, pattern, factory=MEMBER_FACTORY)
    measure = "qicollab.submissions.resources.measure_factory"
    aggregate = "qicollab.submissions.resources.aggregate_measure_factory"
    for name, pattern, factory_name in (
        (
            "submissions.template",
            "/members/{member_id}/measures/{measure_code}/template.{ext}",
            measure,
        ),
        ("submissions.validate", "/members/{member_id}/measures/{measure_code}/validate", measure),
        ("submissions.form", "/members/{member_id}/measures/{measure_code}/form", aggregate),
        ("submissions.grid_save", "/members/{member_id}/measures/{measure_code}/grid", aggregate),
    ):
        config.add_route(name, pattern, factory=factory_name)
    config.add_route(
        "submissions.batch",
        "/members/{member_id}/batches/{batch_id}",
        factory="qicollab.submissions.resources.batch_factory",
    )
    config.scan("qicollab.submissions.views")
