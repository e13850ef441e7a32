"""Outgoing mail (password-reset links, invitations) through pyramid_mailer.

``mail.mailer`` chooses the delivery: ``smtp`` (production, pyramid_mailer's ``mail.*``
settings), ``file`` (each message an ``.eml`` under ``<storage>/mail/``), ``console`` (printed on
standard output, for a development server) or ``dummy`` (kept in memory, for tests). The mailer is
registered as pyramid_mailer's ``IMailer`` utility, so ``pyramid_mailer.get_mailer(request)`` and
``config.include("pyramid_mailer.testing")`` work as documented.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Self

from pyramid_mailer import get_mailer
from pyramid_mailer.interfaces import IMailer
from pyramid_mailer.mailer import DebugMailer, DummyMailer, Mailer
from pyramid_mailer.message import Message

from qicollab.config import storage_path

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

DEFAULT_SENDER = "qicollab@localhost"


class ConsoleMailer:
    """Development mailer: prints each message, so reset links show in the server's output."""

    def bind(self, **_kw: Any) -> Self:
        """pyramid_mailer's API: the same mailer whatever the transaction manager."""
        return self

    def send_immediately(self, message: Message, fail_silently: bool = False) -> None:
        """Print the message now."""
        sys.stdout.write(f"{message.to_message()}\n\n")
        sys.stdout.flush()

    def send(self, message: Message) -> None:
        """Print the message now (there is nothing to roll back)."""
        self.send_immediately(message)


def mailer_from_settings(settings: dict[str, Any]) -> object:
    """The mailer ``mail.mailer`` asks for; unknown kinds are a configuration error."""
    kind = str(settings.get("mail.mailer") or "console").strip().lower()
    if kind == "smtp":
        return Mailer.from_settings(settings, "mail.")
    if kind == "file":
        return DebugMailer(str(storage_path(settings) / "mail"))
    if kind == "console":
        return ConsoleMailer()
    if kind == "dummy":
        return DummyMailer()
    msg = f"mail.mailer must be smtp, file, console or dummy, not {kind!r}"
    raise ValueError(msg)


def send_after_commit(request: Request, *, to: str, subject: str, body: str) -> None:
    """Send a message once the request's transaction commits (never for a rolled-back one).

    SMTP delivery joins the transaction through pyramid_mailer; the other mailers deliver at
    once, which is harmless because they only write locally.
    """
    sender = request.registry.settings.get("mail.default_sender") or DEFAULT_SENDER
    message = Message(subject=subject, sender=sender, recipients=[to], body=body)
    get_mailer(request).send(message)


def includeme(config: Configurator) -> None:
    """Register the configured mailer as the ``IMailer`` utility (and ``request.mailer``)."""
    config.registry.registerUtility(mailer_from_settings(config.get_settings()), IMailer)
    config.add_request_method(get_mailer, "mailer", reify=True)
