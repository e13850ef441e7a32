"""Contexts of routes that name a user or an API token: loaded once, scoped once.

A user or token of another collaborative is 404, like an unknown one. A token the signed-in
user may not revoke is 404 too, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.authorization import DENY_ALL, Allow
from pyramid.httpexceptions import HTTPNotFound

from qicollab.accounts.models import ApiToken, Role, User
from qicollab.permissions import Permission
from qicollab.resources import (
    ADMIN,
    COLLABORATIVE_ACL,
    COORDINATOR,
    in_collaborative,
    path_id,
    signed_in,
)

if TYPE_CHECKING:
    from pyramid.request import Request


@dataclass
class UserResource:
    """A user of the collaborative: managed by its coordinators (the collaborative's ACL)."""

    request: Request
    user: User
    __acl__ = COLLABORATIVE_ACL


def user_factory(request: Request) -> UserResource:
    """``/users/{user_id}/...``: the user, 404 outside the collaborative."""
    return UserResource(request, in_collaborative(request, User, path_id(request, "user_id")))


@dataclass
class TokenResource:
    """An API token: its owner revokes it, and so do the collaborative's coordinators, except
    an admin's token, which only admins revoke."""

    request: Request
    token: ApiToken
    owner: User

    def __acl__(self) -> list[tuple[str, str, object]]:
        acl: list[tuple[str, str, object]] = [
            (Allow, f"user:{self.owner.id}", Permission.ACCOUNT),
            (Allow, ADMIN, Permission.ACCOUNT),
        ]
        if self.owner.role is not Role.ADMIN:
            acl.append((Allow, COORDINATOR, Permission.ACCOUNT))
        acl.append(DENY_ALL)
        return acl


def token_factory(request: Request) -> TokenResource:
    """``/account/tokens/{token_id}/...``: the token, 404 unless the user may act on it."""
    signed_in(request)
    token = request.db.get(ApiToken, path_id(request, "token_id"))
    if token is None:
        raise HTTPNotFound
    context = TokenResource(request, token, in_collaborative(request, User, token.user_id))
    if not request.has_permission(Permission.ACCOUNT, context):
        raise HTTPNotFound
    return context
