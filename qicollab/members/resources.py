"""Context of the coordinators' catalogue routes that name a peer group: loaded once, within
the signed-in user's collaborative (the collaborative ACL decides who may manage it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPNotFound
from sqlalchemy.orm import selectinload

from qicollab.members.models import PeerGroup
from qicollab.resources import Root, signed_in

if TYPE_CHECKING:
    from pyramid.request import Request


@dataclass
class PeerGroupResource(Root):
    """One peer group of the user's collaborative."""

    group: PeerGroup


def peer_group_factory(request: Request) -> PeerGroupResource:
    """``/catalogue/peer-groups/{code}/...``: the group by code in the user's collaborative,
    else 404 (another collaborative's codes answer as unknown ones)."""
    user = signed_in(request)
    group = request.db.scalar(
        sa.select(PeerGroup)
        .where(
            PeerGroup.collaborative_id == user.collaborative_id,
            PeerGroup.code == request.matchdict.get("code", ""),
        )
        .options(selectinload(PeerGroup.members))
    )
    if group is None:
        raise HTTPNotFound
    return PeerGroupResource(request, group)
