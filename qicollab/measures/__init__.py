"""The measure catalogue: definitions, direction, targets and risk-model specifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """The measure service, catalogue routes and views."""
    from qicollab.measures.services import MeasureService  # noqa: PLC0415
    from qicollab.services import collaborative_service  # noqa: PLC0415

    config.register_service_factory(collaborative_service(MeasureService), iface=MeasureService)
    config.add_route("measures.list", "/catalogue/measures")
    config.add_route("measures.new", "/catalogue/measures/new")
    config.add_route("measures.detail", "/catalogue/measures/{code}")
    config.add_route("measures.edit", "/catalogue/measures/{code}/edit")
    config.scan(".views")
