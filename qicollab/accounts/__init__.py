"""Accounts: users and roles, sign-in with server-side sessions, API tokens, CSRF, headers.

``includeme`` wires the domain into the app: the identity loader the security policy calls
(session cookie or bearer token -> :class:`~qicollab.accounts.models.User`), the CSRF policy
(required on every state-changing request), the security-headers tween, the mailer, and the
routes and views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.accounts.csrf import SessionCSRFStoragePolicy, csrf_check_needed
from qicollab.accounts.sessions import load_identity
from qicollab.security import IDENTITY_LOADER_KEY

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

    from qicollab.accounts.models import User


def _request_user(request: Request) -> User | None:
    """``request.user``: the signed-in (active) user, the same as ``request.identity``."""
    return request.identity


def includeme(config: Configurator) -> None:
    """Services, identity, CSRF, security headers, mail, routes and views of accounts."""
    from qicollab.accounts.services import (  # noqa: PLC0415
        AccountService,
        TokenService,
        UserAdminService,
        account_service_factory,
    )
    from qicollab.services import db_service  # noqa: PLC0415

    settings = config.get_settings()
    # Sign-in (with its throttle), user administration and API tokens, for request.find_service.
    config.register_service_factory(account_service_factory, iface=AccountService)
    config.register_service_factory(db_service(UserAdminService), iface=UserAdminService)
    config.register_service_factory(db_service(TokenService), iface=TokenService)
    # Who is asking: the security policy calls this loader (see qicollab.security).
    config.registry[IDENTITY_LOADER_KEY] = load_identity
    config.add_request_method(_request_user, "user", property=True)
    # CSRF tokens bound to the session; checked on every unsafe method unless the request
    # authenticates with a bearer token (the API), which a browser never sends by itself.
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy(settings["qicollab.secret"]))
    config.set_default_csrf_options(require_csrf=True, callback=csrf_check_needed)
    # CSP, nosniff, framing, referrer and no-store on signed-in pages, for every response.
    config.add_tween("qicollab.accounts.headers.security_headers_tween_factory")
    # Password-reset and invitation mail.
    config.include(".mail")

    config.add_route("login", "/login")
    config.add_route("logout", "/logout")
    config.add_route("account.password", "/account/password")
    config.add_route("password.forgot", "/password/forgot")
    config.add_route("password.reset", "/password/reset/{token}")
    config.add_route("users.list", "/users")
    config.add_route("users.new", "/users/new")
    config.add_route(
        "users.edit",
        r"/users/{user_id:\d+}/edit",
        factory="qicollab.accounts.resources.user_factory",
    )
    config.add_route("tokens", "/account/tokens")
    config.add_route(
        "tokens.revoke",
        r"/account/tokens/{token_id:\d+}/revoke",
        factory="qicollab.accounts.resources.token_factory",
    )
    config.scan(".views")
