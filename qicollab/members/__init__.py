"""Member organizations, their blinded codes, and peer groups."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """The member service, member and peer-group routes and views."""
    from qicollab.members.services import MemberService  # noqa: PLC0415
    from qicollab.services import collaborative_service  # noqa: PLC0415

    config.register_service_factory(collaborative_service(MemberService), iface=MemberService)
    config.add_route("members.list", "/catalogue/members")
    config.add_route("peer_groups.new", "/catalogue/peer-groups/new")
    config.add_route(
        "peer_groups.edit",
        "/catalogue/peer-groups/{code}/edit",
        factory="qicollab.members.resources.peer_group_factory",
    )
    config.add_route("collaborative.settings", "/catalogue/settings")
    config.scan(".views")
