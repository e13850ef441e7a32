"""Context resources carrying the ACLs: who may do what is decided here and only here.

Principals come from :mod:`qicollab.security`: ``authenticated``, ``role:<role>``,
``member:<id>`` (the member a user belongs to) and ``member:<id>:<role>``.

Scope is enforced once, by the context factories of routes that name an object: the factory
loads the object and refuses it with 404 when it does not exist or belongs to another
collaborative, the same 404 either way, so an id of another collaborative is never confirmed.
Within the collaborative the object's ``__acl__`` decides (403 for a member's data to the
officers and viewers of other members). Anonymous requests are refused (403, as the ACL would)
before any query, so no one learns which ids exist without signing in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow, Authenticated
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound

from qicollab.members.models import Member
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request
    from sqlalchemy.orm import Mapped

    from qicollab.accounts.models import User

COORDINATOR = "role:coordinator"
ADMIN = "role:admin"

# Allowed / disallowed, collaborative-wide:
#   admin        everything
#   coordinator  view identified results, manage cycles, users and audit, read summaries
#   officer, viewer: only their own account and the blinded collaborative material here;
#                    member data is granted on MemberResource below.
COLLABORATIVE_ACL = [
    (Allow, ADMIN, ALL_PERMISSIONS),
    (
        Allow,
        COORDINATOR,
        (
            Permission.COLLABORATIVE_VIEW,
            Permission.COLLABORATIVE_MANAGE,
            Permission.USERS_MANAGE,
            Permission.AUDIT_VIEW,
            Permission.COLLABORATIVE_READ,
            Permission.ACCOUNT,
            Permission.MEMBER_VIEW,
        ),
    ),
    (Allow, Authenticated, (Permission.ACCOUNT, Permission.COLLABORATIVE_READ)),
    DENY_ALL,
]


@dataclass
class Root:
    """The collaborative as a whole."""

    request: Request
    __acl__ = COLLABORATIVE_ACL


@dataclass
class MemberResource:
    """One member's data. Officers submit for it, viewers read it; coordinators read all."""

    request: Request
    member: Member

    @property
    def member_id(self) -> int:
        """The member's id (what the ACL's principals name)."""
        return self.member.id

    def __acl__(self) -> list[tuple[str, str, object]]:
        member = f"member:{self.member.id}"
        return [
            (Allow, ADMIN, ALL_PERMISSIONS),
            (Allow, COORDINATOR, (Permission.MEMBER_VIEW, Permission.COLLABORATIVE_MANAGE)),
            (
                Allow,
                f"{member}:quality_officer",
                (Permission.MEMBER_VIEW, Permission.MEMBER_SUBMIT),
            ),
            (Allow, f"{member}:member_viewer", Permission.MEMBER_VIEW),
            DENY_ALL,
        ]


def can_submit(request: Request, context: MemberResource) -> bool:
    """Officers of the member, and coordinators (and admins) on its behalf."""
    return bool(
        request.has_permission(Permission.MEMBER_SUBMIT, context)
        or request.has_permission(Permission.COLLABORATIVE_MANAGE, context)
    )


def root_factory(request: Request) -> Root:
    """Context for collaborative-wide routes."""
    return Root(request)


# --- loading an object in the user's collaborative ------------------------------------------


class InCollaborative(Protocol):
    """A row that belongs to one collaborative."""

    id: Mapped[int]
    collaborative_id: Mapped[int]


class OfMember(Protocol):
    """A row that belongs to one member."""

    id: Mapped[int]
    member_id: Mapped[int]


Scoped = TypeVar("Scoped", bound=InCollaborative)
Owned = TypeVar("Owned", bound=OfMember)


def signed_in(request: Request) -> User:
    """The signed-in user; anonymous requests are refused before anything is looked up."""
    user = request.identity
    if user is None:
        raise HTTPForbidden
    return user


def path_id(request: Request, key: str) -> int:
    """The whole-number id ``key`` of the route, else 404."""
    raw = request.matchdict.get(key, "")
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        raise HTTPNotFound
    return int(raw)


def in_collaborative(request: Request, model: type[Scoped], object_id: int) -> Scoped:
    """The row of ``model`` with this id, if it belongs to the user's collaborative, else 404:
    unknown and foreign ids answer alike."""
    user = signed_in(request)
    found = request.db.get(model, object_id)
    if found is None or found.collaborative_id != user.collaborative_id:
        raise HTTPNotFound
    return found


def with_member(request: Request, model: type[Owned], object_id: int) -> tuple[Owned, Member]:
    """A member's row by id, with its member; 404 unless that member is in the user's
    collaborative."""
    user = signed_in(request)
    found = request.db.get(model, object_id)
    member = None if found is None else request.db.get(Member, found.member_id)
    if found is None or member is None or member.collaborative_id != user.collaborative_id:
        raise HTTPNotFound
    return found, member


def of_member(request: Request, member: Member, model: type[Owned], key: str) -> Owned:
    """The row of ``model`` whose id is the route's ``key``, if it is ``member``'s, else 404."""
    found = request.db.get(model, path_id(request, key))
    if found is None or found.member_id != member.id:
        raise HTTPNotFound
    return found


def member_factory(request: Request) -> MemberResource:
    """Context for ``/members/{member_id}/...``: the member, 404 outside the collaborative."""
    return MemberResource(request, in_collaborative(request, Member, path_id(request, "member_id")))
