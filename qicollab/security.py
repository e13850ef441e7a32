"""The security policy: who the request is, which principals it has, and the ACL check.

Identity comes from an identity loader that the accounts domain registers (server-side session
cookie or API bearer token). Without one, every request is anonymous.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pyramid.authorization import ACLHelper, Authenticated, Everyone

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

    from qicollab.accounts.models import User


class IdentityLoader(Protocol):
    """Finds the signed-in user of a request, or None."""

    def __call__(self, request: Request) -> User | None: ...


IDENTITY_LOADER_KEY = "qicollab.identity_loader"


def cookies_secure(request: Request) -> bool:
    """Whether cookies set on this response carry ``Secure``.

    Always over HTTPS, which behind a proxy means the proxy is trusted (waitress's
    ``trusted_proxy`` turns ``X-Forwarded-Proto: https`` into the request's scheme); and always
    when ``qicollab.secure_cookies`` is on, so a deployment meant for HTTPS never lets a
    session cookie travel over plain HTTP even if the proxy is misconfigured.
    """
    from qicollab.config import as_bool  # noqa: PLC0415

    return request.scheme == "https" or as_bool(
        request.registry.settings.get("qicollab.secure_cookies")
    )


def principals_for(user: User) -> list[str]:
    """The principals ACLs are written against."""
    principals = [Everyone, Authenticated, f"user:{user.id}", f"role:{user.role.value}"]
    if user.member_id is not None:
        principals += [f"member:{user.member_id}", f"member:{user.member_id}:{user.role.value}"]
    return principals


class SecurityPolicy:
    """ACL authorization over the identity that the accounts domain loads."""

    def __init__(self) -> None:
        self.acl = ACLHelper()

    def identity(self, request: Request) -> User | None:
        """The active user, or None."""
        loader: IdentityLoader | None = request.registry.get(IDENTITY_LOADER_KEY)
        user = loader(request) if loader else None
        return user if user is not None and user.is_active else None

    def authenticated_userid(self, request: Request) -> str | None:
        """The user's id as text."""
        user = request.identity
        return None if user is None else str(user.id)

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        """Allow or deny by the context's ACL."""
        user = request.identity
        principals = [Everyone] if user is None else principals_for(user)
        return self.acl.permits(context, principals, permission)

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """Sessions are managed by the accounts domain; nothing to add here."""
        return []

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        """Sessions are managed by the accounts domain; nothing to add here."""
        return []


def includeme(config: Configurator) -> None:
    """Install the policy and the deny-by-default permission."""
    from qicollab.permissions import UNNAMED  # noqa: PLC0415

    config.set_security_policy(SecurityPolicy())
    config.set_default_permission(UNNAMED)
