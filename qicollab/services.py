"""ServiceT_co factories for pyramid_services, shared by the domains' ``includeme``.

Most services are built the same way from a request: on its database session, and, for the
collaborative-wide ones, for the signed-in user's collaborative. These two helpers make that
factory, so a domain registers a service in one line::

    config.register_service_factory(collaborative_service(MeasureService), iface=MeasureService)

and a view asks ``request.find_service(MeasureService)``. A service built differently (upload
limits, the clock, a notifier) keeps its own factory beside the service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyramid.request import Request
    from sqlalchemy.orm import Session

S = TypeVar("S")


def db_service(cls: Callable[[Session], S]) -> Callable[[object, Request], S]:
    """A factory building ``cls`` on the request's session."""

    def factory(_context: object, request: Request) -> S:
        return cls(request.db)

    return factory


def collaborative_service(cls: Callable[[Session, int], S]) -> Callable[[object, Request], S]:
    """A factory building ``cls`` for the signed-in user's collaborative.

    Views of signed-in users only ask for these: the permission check comes first.
    """

    def factory(_context: object, request: Request) -> S:
        return cls(request.db, request.identity.collaborative_id)

    return factory
