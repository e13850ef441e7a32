"""Context resources carrying the ACLs: who may do what is decided here and only here.

Principals come from :mod:`qicollab.security`: ``authenticated``, ``role:<role>``,
``member:<id>`` (the member a user belongs to) and ``member:<id>:<role>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow, Authenticated
from pyramid.httpexceptions import HTTPNotFound

from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request

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
    member_id: int

    def __acl__(self) -> list[tuple[str, str, object]]:
        member = f"member:{self.member_id}"
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


def root_factory(request: Request) -> Root:
    """Context for collaborative-wide routes."""
    return Root(request)


def member_factory(request: Request) -> MemberResource:
    """Context for ``/members/{member_id}/...`` routes; unknown or malformed ids are 404."""
    raw = request.matchdict.get("member_id", "")
    if not raw.isdigit():
        raise HTTPNotFound
    return MemberResource(request, int(raw))
