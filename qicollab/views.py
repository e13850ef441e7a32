"""Pages that belong to no domain: home, health check, and the error pages."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)

from qicollab.migrations import head_revision

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

log = logging.getLogger(__name__)


@view_config(route_name="home", renderer="home.jinja2", permission=NO_PERMISSION_REQUIRED)
def home(request: Request) -> dict[str, Any]:
    """What qicollab is, and what the signed-in user has to do next (by role)."""
    from qicollab.cycles.home import home_context  # noqa: PLC0415

    return home_context(request)


@view_config(route_name="health", renderer="json", permission=NO_PERMISSION_REQUIRED)
def health(request: Request) -> dict[str, Any]:
    """For load balancers and monitoring: is the database reachable and migrated?"""
    try:
        revision = request.db.execute(
            sa.text("SELECT version_num FROM alembic_version")
        ).scalar_one_or_none()
    except sa.exc.SQLAlchemyError:
        log.exception("health check could not reach the database")
        request.response.status = 503
        return {"status": "error", "database": "unreachable"}
    head = head_revision()
    if revision != head:
        request.response.status = 503
        return {"status": "error", "database": "not migrated", "revision": revision}
    return {"status": "ok", "database": "ok", "revision": revision}


@forbidden_view_config(renderer="errors/403.jinja2")
def forbidden(exc: HTTPForbidden, request: Request) -> dict[str, Any]:
    """403: signed in without the right, or not signed in at all."""
    request.response.status = 403
    return {"signed_in": request.identity is not None}


@notfound_view_config(renderer="errors/404.jinja2", append_slash=True)
def notfound(exc: HTTPNotFound, request: Request) -> dict[str, Any]:
    """404 with a way back."""
    request.response.status = 404
    return {}


@exception_view_config(Exception, renderer="errors/500.jinja2")
def server_error(exc: Exception, request: Request) -> dict[str, Any]:
    """500: log the detail, show none of it (it may contain submitted values)."""
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    request.response.status = 500
    return {}


def includeme(config: Configurator) -> None:
    """Routes and views of this module."""
    config.add_route("home", "/")
    config.add_route("health", "/health")
    config.add_static_view("static", "qicollab:static", cache_max_age=3600)
    config.scan(__name__)
