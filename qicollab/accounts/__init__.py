"""Accounts: users, roles, sign-in with server-side sessions, API tokens, security headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyramid.csrf import CookieCSRFStoragePolicy
from pyramid_mailer import mailer_factory_from_settings
from pyramid_mailer.mailer import DebugMailer, DummyMailer

from qicollab.accounts.sessions import load_identity
from qicollab.config import as_bool, storage_path
from qicollab.security import IDENTITY_LOADER_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def security_headers_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    """Every response gets the headers that stop framing, sniffing and leaking referrers."""

    def tween(request: Request) -> Response:
        response = handler(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.scheme == "https":
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if "qicollab_session" in request.cookies or "Authorization" in request.headers:
            headers["Cache-Control"] = "no-store"
        return response

    return tween


def _mailer(settings: dict[str, str]) -> object:
    kind = settings.get("mail.mailer", "console")
    if kind == "dummy":
        return DummyMailer()
    if kind in {"file", "console"}:
        # DebugMailer writes each message as a file; "console" keeps them under storage too.
        return DebugMailer(str(storage_path(settings) / "mail"))
    return mailer_factory_from_settings(settings)


def includeme(config: Configurator) -> None:
    """Identity, CSRF, mail, headers, routes and views of the accounts domain."""
    settings = config.get_settings()
    config.registry[IDENTITY_LOADER_KEY] = load_identity
    config.registry["qicollab.mailer"] = _mailer(settings)
    # Double-submit CSRF cookie (Pyramid's own policy); bearer-token API views opt out.
    config.set_csrf_storage_policy(
        CookieCSRFStoragePolicy(
            httponly=True, samesite="Lax", secure=as_bool(settings.get("qicollab.secure_cookies"))
        )
    )
    config.set_default_csrf_options(require_csrf=True)
    config.add_tween("qicollab.accounts.security_headers_tween_factory")
    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("account.password", "/account/password")
    config.add_route("password.forgot", "/password/forgot")
    config.add_route("password.reset", "/password/reset/{token}")
    config.add_route("users.list", "/users")
    config.add_route("users.new", "/users/new")
    config.add_route("users.edit", "/users/{user_id:\\d+}/edit")
    config.add_route("tokens", "/account/tokens")
    config.add_route("tokens.revoke", "/account/tokens/{token_id:\\d+}/revoke")
    config.scan(".views")
