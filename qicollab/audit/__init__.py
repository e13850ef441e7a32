"""audit domain: the append-only log, and its view and CSV export for coordinators."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """The audit log page and its export."""
    config.add_route("audit.list", "/audit")
    config.add_route("audit.export", "/audit.csv")
    config.scan("qicollab.audit.views")
