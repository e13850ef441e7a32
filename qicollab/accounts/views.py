"""Sign in and out, passwords, user administration and API tokens in the portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPFound, HTTPNotFound, HTTPSeeOther, HTTPTooManyRequests
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config
from pyramid_mailer.message import Message

from qicollab.accounts.models import ApiToken, Role, User
from qicollab.accounts.services import AccountError, AccountService, Throttle, ThrottledError
from qicollab.accounts.sessions import (
    end_session,
    new_api_token,
    revoke_user_sessions,
    start_session,
)
from qicollab.audit.services import record
from qicollab.db import utcnow
from qicollab.members.models import Member
from qicollab.permissions import Permission

if TYPE_CHECKING:
    from pyramid.request import Request


def _service(request: Request) -> AccountService:
    settings = request.registry.settings
    from datetime import timedelta  # noqa: PLC0415

    return AccountService(
        request.db,
        Throttle(
            int(settings["qicollab.login_max_failures"]),
            timedelta(minutes=float(settings["qicollab.login_window_minutes"])),
        ),
    )


def _safe_next(request: Request) -> str:
    target = request.params.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else "/"


@view_config(
    route_name="login",
    renderer="accounts/login.jinja2",
    permission=NO_PERMISSION_REQUIRED,
    require_csrf=True,
)
def login(request: Request) -> Any:
    """Sign in with e-mail and password; a new session id is issued every time."""
    context = {"email": "", "error": None, "next": _safe_next(request)}
    if request.method != "POST":
        return context
    email = request.POST.get("email", "")
    try:
        user = _service(request).authenticate(
            email, request.POST.get("password", ""), request.client_addr or "unknown"
        )
    except ThrottledError as error:
        record(
            request.db,
            "login.throttled",
            actor=email[:254] or "anonymous",
            ip_address=request.client_addr,
        )
        response = HTTPTooManyRequests(str(error))
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except AccountError as error:
        record(
            request.db,
            "login.failed",
            actor=email.strip().lower()[:254] or "anonymous",
            ip_address=request.client_addr,
        )
        request.response.status = 401
        return {**context, "email": email, "error": str(error)}
    start_session(request, request.db, user)
    record(
        request.db,
        "login.succeeded",
        actor=user,
        member_id=user.member_id,
        ip_address=request.client_addr,
    )
    return HTTPSeeOther(context["next"])


@view_config(
    route_name="logout", request_method="POST", permission=NO_PERMISSION_REQUIRED, require_csrf=True
)
def logout(request: Request) -> HTTPSeeOther:
    """Sign out: the session row is revoked, the cookie cleared."""
    if request.identity is not None:
        record(request.db, "logout", actor=request.identity, ip_address=request.client_addr)
    end_session(request, request.db)
    return HTTPSeeOther(request.route_url("home"))


@view_config(
    route_name="account.password",
    renderer="accounts/password.jinja2",
    permission=Permission.ACCOUNT,
    require_csrf=True,
)
def change_password(request: Request) -> Any:
    """Change one's own password; other sessions of the account are ended."""
    if request.method != "POST":
        return {"error": None, "done": False}
    user = request.identity
    if request.POST.get("new_password") != request.POST.get("confirm_password"):
        request.response.status = 422
        return {"error": "The two new passwords differ.", "done": False}
    try:
        _service(request).change_password(
            user, request.POST.get("current_password", ""), request.POST.get("new_password", "")
        )
    except AccountError as error:
        request.response.status = 422
        return {"error": str(error), "done": False}
    revoke_user_sessions(request.db, user.id, keep=request.cookies.get("qicollab_session"))
    record(request.db, "password.changed", actor=user, ip_address=request.client_addr)
    return {"error": None, "done": True}


@view_config(
    route_name="password.forgot",
    renderer="accounts/forgot.jinja2",
    permission=NO_PERMISSION_REQUIRED,
    require_csrf=True,
)
def forgot_password(request: Request) -> Any:
    """Send a one-time reset link; the answer is the same whether the address exists or not."""
    if request.method != "POST":
        return {"sent": False}
    started = _service(request).start_reset(request.POST.get("email", ""))
    if started is not None:
        user, secret = started
        link = request.route_url("password.reset", token=secret)
        request.registry["qicollab.mailer"].send_immediately(
            Message(
                subject="Reset your qicollab password",
                sender=request.registry.settings.get("mail.default_sender", "qicollab@localhost"),
                recipients=[user.email],
                body=(
                    "Someone asked to reset the password of this qicollab account.\n\n"
                    f"Open this link within an hour to choose a new password:\n{link}\n\n"
                    "If it was not you, ignore this message; nothing has changed."
                ),
            )
        )
        record(request.db, "password.reset_requested", actor=user, ip_address=request.client_addr)
    return {"sent": True}


@view_config(
    route_name="password.reset",
    renderer="accounts/reset.jinja2",
    permission=NO_PERMISSION_REQUIRED,
    require_csrf=True,
)
def reset_password(request: Request) -> Any:
    """Choose a new password with a reset link; it works once, within an hour."""
    if request.method != "POST":
        return {"error": None}
    try:
        user = _service(request).finish_reset(
            request.matchdict["token"], request.POST.get("new_password", "")
        )
    except AccountError as error:
        request.response.status = 422
        return {"error": str(error)}
    revoke_user_sessions(request.db, user.id)
    record(request.db, "password.reset", actor=user, ip_address=request.client_addr)
    return HTTPSeeOther(request.route_url("login"))


@view_config(
    route_name="users.list", renderer="accounts/users.jinja2", permission=Permission.USERS_MANAGE
)
def user_list(request: Request) -> dict[str, Any]:
    """Every user of the collaborative."""
    users = request.db.scalars(
        sa.select(User)
        .where(User.collaborative_id == request.identity.collaborative_id)
        .order_by(User.email)
    ).all()
    return {"users": users}


@view_config(
    route_name="users.new",
    renderer="accounts/user_form.jinja2",
    permission=Permission.USERS_MANAGE,
    require_csrf=True,
)
@view_config(
    route_name="users.edit",
    renderer="accounts/user_form.jinja2",
    permission=Permission.USERS_MANAGE,
    require_csrf=True,
)
def user_form(request: Request) -> Any:
    """Create a user or change role, member and status; every change is audited."""
    actor: User = request.identity
    user = None
    if "user_id" in request.matchdict:
        user = request.db.get(User, int(request.matchdict["user_id"]))
        if user is None or user.collaborative_id != actor.collaborative_id:
            raise HTTPNotFound
    roles = [r.value for r in Role if r is not Role.ADMIN or actor.role is Role.ADMIN]
    members = request.db.scalars(
        sa.select(Member)
        .where(Member.collaborative_id == actor.collaborative_id)
        .order_by(Member.code)
    ).all()
    context = {"user": user, "roles": roles, "members": members, "error": None}
    if request.method != "POST":
        return context
    post = request.POST
    try:
        saved = _service(request).save_user(
            actor,
            email=post.get("email", ""),
            role=post.get("role", ""),
            member_code=post.get("member") or None,
            display_name=post.get("display_name", ""),
            is_active=post.get("is_active", "on" if user is None else "") == "on",
            user=user,
        )
    except AccountError as error:
        request.response.status = 422
        return {**context, "error": str(error)}
    if not saved.is_active:
        revoke_user_sessions(request.db, saved.id)
    record(
        request.db,
        "user.changed" if user else "user.created",
        actor=actor,
        object_type="user",
        object_id=saved.id,
        member_id=saved.member_id,
        ip_address=request.client_addr,
        details={"role": saved.role.value, "active": saved.is_active},
    )
    return HTTPFound(request.route_url("users.list"))


def _tokens_for(request: Request) -> list[ApiToken]:
    query = (
        sa.select(ApiToken)
        .join(User)
        .where(User.collaborative_id == request.identity.collaborative_id)
    )
    if not request.has_permission(Permission.USERS_MANAGE):
        query = query.where(ApiToken.user_id == request.identity.id)
    return list(request.db.scalars(query.order_by(ApiToken.created_at.desc())))


@view_config(
    route_name="tokens",
    renderer="accounts/tokens.jinja2",
    permission=Permission.ACCOUNT,
    require_csrf=True,
)
def tokens(request: Request) -> dict[str, Any]:
    """One's API tokens (coordinators: everyone's); a new token is shown once."""
    created = None
    if request.method == "POST":
        token, created = new_api_token(
            request.db, request.identity, request.POST.get("description", "")[:200]
        )
        record(
            request.db,
            "token.created",
            actor=request.identity,
            object_type="api_token",
            object_id=token.prefix,
            ip_address=request.client_addr,
        )
    return {"tokens": _tokens_for(request), "created": created}


@view_config(
    route_name="tokens.revoke",
    request_method="POST",
    permission=Permission.ACCOUNT,
    require_csrf=True,
)
def revoke_token(request: Request) -> HTTPSeeOther:
    """Revoke a token: one's own, or any in the collaborative for coordinators."""
    wanted = int(request.matchdict["token_id"])
    token = next((t for t in _tokens_for(request) if t.id == wanted), None)
    if token is None:
        raise HTTPNotFound
    token.revoked_at = token.revoked_at or utcnow()
    record(
        request.db,
        "token.revoked",
        actor=request.identity,
        object_type="api_token",
        object_id=token.prefix,
        ip_address=request.client_addr,
    )
    return HTTPSeeOther(request.route_url("tokens"))
