"""Contexts of routes that name a PDSA cycle or a learning session: loaded once, scoped once.

A cycle is its team's :class:`~qicollab.resources.MemberResource` (the member's ACL decides)
plus the cycle; cycles outside the user's collaborative, or of another member than the path
names, are 404 like unknown ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.httpexceptions import HTTPNotFound

from qicollab.improvement.models import PdsaCycle
from qicollab.improvement.sessions import SessionService
from qicollab.permissions import Permission
from qicollab.resources import (
    COLLABORATIVE_ACL,
    MemberResource,
    member_factory,
    of_member,
    path_id,
    signed_in,
    with_member,
)

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.cycles.models import LearningSession
    from qicollab.schedule.calendar import LearningCycle


@dataclass
class PdsaResource(MemberResource):
    """One PDSA cycle of a member team."""

    cycle: PdsaCycle


def pdsa_factory(request: Request) -> PdsaResource:
    """``/members/{member_id}/pdsa/{pdsa_id}``: a cycle of that member, else 404."""
    member = member_factory(request).member
    return PdsaResource(request, member, of_member(request, member, PdsaCycle, "pdsa_id"))


def readable_pdsa_factory(request: Request) -> PdsaResource:
    """``/api/pdsa/{pdsa_id}``: the cycle with its team; a cycle the token may not read is 404
    too, as if it did not exist."""
    cycle, member = with_member(request, PdsaCycle, path_id(request, "pdsa_id"))
    context = PdsaResource(request, member, cycle)
    if not request.has_permission(Permission.MEMBER_VIEW, context):
        raise HTTPNotFound
    return context


@dataclass
class SessionResource:
    """A learning session of the collaborative, with its cycle (the collaborative's ACL)."""

    request: Request
    session: LearningSession
    cycle: LearningCycle
    __acl__ = COLLABORATIVE_ACL


def session_factory(request: Request) -> SessionResource:
    """``/learning-sessions/{session_id}``: the session, 404 outside the collaborative."""
    signed_in(request)
    found = request.find_service(SessionService).get(path_id(request, "session_id"))
    if found is None:
        raise HTTPNotFound
    return SessionResource(request, *found)
