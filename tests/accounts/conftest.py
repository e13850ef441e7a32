"""Fixtures of the accounts tests: a small collaborative, clients, and a mailer that keeps mail."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
import webtest
from pyramid_mailer.interfaces import IMailer
from pyramid_mailer.mailer import DummyMailer

from qicollab.accounts.models import Role, User
from qicollab.db import utcnow
from qicollab.members.models import Collaborative, Member
from tests.factories import (
    CollaborativeFactory,
    MemberFactory,
    UserFactory,
    factories,
)

__all__ = ["factories"]

#: Every request of a client comes from this address unless a test says otherwise.
CLIENT_ADDRESS = "10.0.0.1"


@dataclass
class People:
    """One collaborative, two members, and a user of every role."""

    collaborative: Collaborative
    home: Member
    other: Member
    officer: User
    viewer: User
    other_officer: User
    coordinator: User
    admin: User


@pytest.fixture
def people(factories: Any) -> People:
    """Member H01 has an officer and a viewer, member H02 an officer; plus coordinator, admin."""
    collaborative = CollaborativeFactory(slug="qi", name="QI collaborative")
    home = MemberFactory(collaborative=collaborative, code="H01", name="Home Hospital")
    other = MemberFactory(collaborative=collaborative, code="H02", name="Other Hospital")
    return People(
        collaborative=collaborative,
        home=home,
        other=other,
        officer=UserFactory(member=home, email="officer@example.test"),
        viewer=UserFactory(member=home, role=Role.MEMBER_VIEWER, email="viewer@example.test"),
        other_officer=UserFactory(member=other, email="other.officer@example.test"),
        coordinator=UserFactory(
            collaborative=collaborative, role=Role.COORDINATOR, email="coordinator@example.test"
        ),
        admin=UserFactory(collaborative=collaborative, role=Role.ADMIN, email="admin@example.test"),
    )


def client(app: Any, **environ: str) -> webtest.TestApp:
    """A WebTest client (a browser with its own cookies) from :data:`CLIENT_ADDRESS`."""
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": CLIENT_ADDRESS, **environ})


@pytest.fixture
def browser(app: Any) -> webtest.TestApp:
    """A browser over plain HTTP."""
    return client(app)


@pytest.fixture
def https_browser(app: Any) -> webtest.TestApp:
    """A browser over HTTPS (Pyramid then also checks the Origin/Referer of form posts)."""
    return client(app, **{"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})


@pytest.fixture
def mailer(app: Any) -> DummyMailer:
    """pyramid_mailer's DummyMailer in place of the configured one; sent mail is in ``.outbox``."""
    dummy = DummyMailer()
    app.registry.registerUtility(dummy, IMailer)
    return dummy


class SteppingClock:
    """A clock that moves only when read (by ``step``) or told to (:meth:`advance`).

    Each reading is a little later than the one before, so events keep their order, yet how
    long a request really takes never changes what the throttle decides.
    """

    def __init__(self, step: dt.timedelta = dt.timedelta(milliseconds=1)) -> None:
        self.now = utcnow()
        self.step = step

    def __call__(self) -> dt.datetime:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> SteppingClock:
    """The time the sign-in throttle reads (see :class:`SteppingClock`)."""
    return SteppingClock()
