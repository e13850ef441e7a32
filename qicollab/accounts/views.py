"""Portal pages: sign in and out, passwords, user administration and API tokens.

Views stay thin: read the form, call a service from :mod:`qicollab.accounts.services`, render
or redirect. Every state-changing request passes Pyramid's CSRF check (the app default);
failed checks are answered 403 by :func:`bad_csrf`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import exception_view_config, view_config

from qicollab.accounts.mail import send_after_commit
from qicollab.accounts.models import Role, User
from qicollab.accounts.passwords import MIN_PASSWORD_LENGTH
from qicollab.accounts.services import (
    INVITATION_VALID_FOR,
    AccountError,
    AccountService,
    ThrottledError,
    TokenService,
    UserAdminService,
)
from qicollab.accounts.sessions import (
    current_session_id,
    end_session,
    revoke_user_sessions,
    start_session,
)
from qicollab.audit.services import record
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.accounts.resources import TokenResource, UserResource


def _accounts(request: Request) -> AccountService:
    return request.find_service(AccountService)


def _errors(error: AccountError) -> dict[str, str]:
    """Form errors keyed by field; ``_form`` for errors about the whole form."""
    return {error.field or "_form": str(error)}


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in; anything else (other hosts, schemes) is ``/``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@exception_view_config(BadCSRFToken, renderer="errors/403.jinja2")
@exception_view_config(BadCSRFOrigin, renderer="errors/403.jinja2")
def bad_csrf(exc: Exception, request: Request) -> dict[str, Any]:
    """A missing or wrong CSRF token (or a foreign Origin) is refused like any other 403."""
    request.response.status = 403
    return {"signed_in": request.identity is not None, "csrf_failed": True}


# --- signing in and out ---------------------------------------------------------------------


@view_config(
    route_name="login", renderer="accounts/login.jinja2", permission=NO_PERMISSION_REQUIRED
)
def login(request: Request) -> Any:
    """Sign in with e-mail and password; every successful sign-in gets a new session id."""
    context: dict[str, Any] = {
        "email": "",
        "errors": {},
        "next": safe_next(request.params.get("next")),
    }
    if request.method != "POST":
        return context
    email = request.POST.get("email", "")
    context["email"] = email
    try:
        user = _accounts(request).authenticate(
            email, request.POST.get("password", ""), request.client_addr or "unknown"
        )
    except ThrottledError as error:
        request.response.status = 429
        request.response.headers["Retry-After"] = str(error.retry_after)
        return {**context, "errors": _errors(error)}
    except AccountError as error:
        request.response.status = 401
        return {**context, "errors": _errors(error)}
    start_session(request, user)
    return HTTPSeeOther(context["next"])


@view_config(route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED)
def logout(request: Request) -> HTTPSeeOther:
    """Sign out: the session row is revoked and the cookie cleared (POST, CSRF-checked)."""
    user = request.identity
    if user is not None:
        record(
            request.db,
            "logout",
            actor=user,
            object_type="user",
            object_id=user.id,
            member_id=user.member_id,
            ip_address=request.client_addr,
        )
    end_session(request)
    return HTTPSeeOther(request.route_url("login"))


# --- passwords ------------------------------------------------------------------------------


@view_config(
    route_name="account.password",
    renderer="accounts/password.jinja2",
    permission=Permission.ACCOUNT,
)
def change_password(request: Request) -> Any:
    """Change one's own password; every other session of the account is signed out."""
    context: dict[str, Any] = {"errors": {}, "done": False, "min_length": MIN_PASSWORD_LENGTH}
    if request.method != "POST":
        return context
    user: User = request.identity
    post = request.POST
    try:
        _accounts(request).change_password(
            user,
            post.get("current_password", ""),
            post.get("new_password", ""),
            post.get("confirm_password", ""),
            ip_address=request.client_addr,
        )
    except AccountError as error:
        request.response.status = 422
        return {**context, "errors": _errors(error)}
    revoke_user_sessions(request.db, user.id, keep=current_session_id(request))
    return {**context, "done": True}


@view_config(
    route_name="password.forgot",
    renderer="accounts/forgot.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def forgot_password(request: Request) -> Any:
    """Mail a one-time reset link. The answer is the same whether the address exists or not."""
    if request.method != "POST":
        return {"sent": False}
    started = _accounts(request).request_reset(
        request.POST.get("email", ""), ip_address=request.client_addr
    )
    if started is not None:
        user, secret = started
        send_after_commit(
            request,
            to=user.email,
            subject="Reset your qicollab password",
            body=(
                "Someone asked to reset the password of your qicollab account.\n\n"
                "Open this link within an hour to choose a new password (it works once):\n"
                f"{request.route_url('password.reset', token=secret)}\n\n"
                "If it was not you, ignore this message: nothing has changed.\n"
            ),
        )
    return {"sent": True}


@view_config(
    route_name="password.reset",
    renderer="accounts/reset.jinja2",
    permission=NO_PERMISSION_REQUIRED,
)
def reset_password(request: Request) -> Any:
    """Choose a new password from a reset link; it works once, within its validity."""
    service = _accounts(request)
    secret = request.matchdict["token"]
    context: dict[str, Any] = {"errors": {}, "link_works": True, "min_length": MIN_PASSWORD_LENGTH}
    if request.method != "POST":
        if not service.reset_link_works(secret):
            request.response.status = 404
            return {**context, "link_works": False}
        return context
    try:
        user = service.reset_password(
            secret,
            request.POST.get("new_password", ""),
            request.POST.get("confirm_password", ""),
            ip_address=request.client_addr,
        )
    except AccountError as error:
        request.response.status = 422
        return {**context, "errors": _errors(error), "link_works": error.field is not None}
    revoke_user_sessions(request.db, user.id)
    return HTTPSeeOther(request.route_url("login", _query={"reset": "1"}))


# --- user administration --------------------------------------------------------------------


@view_config(
    route_name="users.list",
    renderer="accounts/users.jinja2",
    permission=Permission.USERS_MANAGE,
    request_method="GET",
)
def user_list(request: Request) -> dict[str, Any]:
    """Every user of the collaborative, with role, member and status."""
    return {
        "users": request.find_service(UserAdminService).users(request.identity.collaborative_id)
    }


def _user_form_context(request: Request, user: User | None) -> dict[str, Any]:
    actor: User = request.identity
    service = request.find_service(UserAdminService)
    post = request.POST
    return {
        "user": user,
        "roles": service.grantable_roles(actor),
        "members": service.members(actor.collaborative_id),
        "errors": {},
        "values": {
            "email": post.get("email", user.email if user else ""),
            "display_name": post.get("display_name", user.display_name if user else ""),
            "role": post.get("role", user.role.value if user else Role.QUALITY_OFFICER.value),
            "member": post.get("member", user.member.code if user and user.member else ""),
            "is_active": (post.get("is_active") == "on")
            if request.method == "POST"
            else (user.is_active if user else True),
        },
        "can_edit": user is None or user.role is not Role.ADMIN or actor.role is Role.ADMIN,
    }


@view_config(
    route_name="users.new",
    renderer="accounts/user_form.jinja2",
    permission=Permission.USERS_MANAGE,
)
def user_new(request: Request) -> Any:
    """Create a user with a role (and member); they get a link to set their password."""
    context = _user_form_context(request, None)
    if request.method != "POST":
        return context
    actor: User = request.identity
    values = context["values"]
    try:
        user = request.find_service(UserAdminService).create_user(
            actor,
            collaborative_id=actor.collaborative_id,
            email=values["email"],
            role=values["role"],
            member_code=values["member"] or None,
            display_name=values["display_name"],
            ip_address=request.client_addr,
        )
    except AccountError as error:
        request.response.status = 422
        return {**context, "errors": _errors(error)}
    secret = _accounts(request).issue_reset(user, INVITATION_VALID_FOR)
    if secret is not None:
        send_after_commit(
            request,
            to=user.email,
            subject="Your qicollab account",
            body=(
                f"{actor.display_name or actor.email} created a qicollab account for you.\n\n"
                "Open this link within three days to choose your password (it works once):\n"
                f"{request.route_url('password.reset', token=secret)}\n\n"
                "Later, use 'Forgot your password?' on the sign-in page.\n"
            ),
        )
    return HTTPSeeOther(request.route_url("users.list", _query={"created": user.email}))


@view_config(
    route_name="users.edit",
    renderer="accounts/user_form.jinja2",
    permission=Permission.USERS_MANAGE,
)
def user_edit(context: UserResource, request: Request) -> Any:
    """Change a user's role, member, name, address or status; deactivation signs them out."""
    actor: User = request.identity
    user = context.user
    context = _user_form_context(request, user)
    if request.method != "POST":
        return context
    values = context["values"]
    try:
        changes = request.find_service(UserAdminService).update_user(
            actor,
            user,
            email=values["email"],
            role=values["role"],
            member_code=values["member"] or None,
            display_name=values["display_name"],
            is_active=values["is_active"],
            ip_address=request.client_addr,
        )
    except AccountError as error:
        request.response.status = 422
        return {**context, "errors": _errors(error)}
    if {"is_active", "role", "member_id", "email"} & changes.keys():
        revoke_user_sessions(request.db, user.id)
    return HTTPSeeOther(request.route_url("users.list"))


# --- API tokens -----------------------------------------------------------------------------


def _tokens_context(request: Request, created: str | None = None) -> dict[str, Any]:
    everyone = request.has_permission(Permission.USERS_MANAGE)
    tokens = request.find_service(TokenService).visible_to(
        request.identity, everyone=bool(everyone)
    )
    return {"tokens": tokens, "created": created, "everyone": bool(everyone), "errors": {}}


@view_config(
    route_name="tokens",
    renderer="accounts/tokens.jinja2",
    permission=Permission.ACCOUNT,
)
def tokens(request: Request) -> dict[str, Any]:
    """One's API tokens (coordinators see the collaborative's); a new token is shown once."""
    if request.method != "POST":
        return _tokens_context(request)
    _, secret = request.find_service(TokenService).create(
        request.identity,
        request.POST.get("description", ""),
        ip_address=request.client_addr,
    )
    return _tokens_context(request, created=secret)


@view_config(
    route_name="tokens.revoke",
    request_method="POST",
    permission=Permission.ACCOUNT,
)
def revoke_token(context: TokenResource, request: Request) -> HTTPSeeOther:
    """Revoke a token: one's own, or (coordinators) any in the collaborative; others are 404
    (:func:`~qicollab.accounts.resources.token_factory`)."""
    request.find_service(TokenService).revoke(
        context.token, actor=request.identity, ip_address=request.client_addr
    )
    return HTTPSeeOther(request.route_url("tokens"))
