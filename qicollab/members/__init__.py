"""Member organizations, their blinded codes, and peer groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Member and peer-group routes and views."""
    config.add_route("members.list", "/catalogue/members")
    config.add_route("peer_groups.new", "/catalogue/peer-groups/new")
    config.add_route("peer_groups.edit", "/catalogue/peer-groups/{code}/edit")
    config.add_route("collaborative.settings", "/catalogue/settings")
    config.scan(".views")
