"""notifications domain: workflow e-mail, sent after commit, recorded, opt-out per kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Each user's e-mail preferences page."""
    config.add_route("account.notifications", "/account/notifications")
    config.scan("qicollab.notifications.views")
