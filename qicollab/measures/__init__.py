"""The measure catalogue: definitions, direction, targets and risk-model specifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Catalogue routes and views."""
    config.add_route("measures.list", "/catalogue/measures")
    config.add_route("measures.new", "/catalogue/measures/new")
    config.add_route("measures.detail", "/catalogue/measures/{code}")
    config.add_route("measures.edit", "/catalogue/measures/{code}/edit")
    config.scan(".views")
