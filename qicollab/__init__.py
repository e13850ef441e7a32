"""qicollab: a platform for healthcare quality-improvement collaboratives.

:func:`main` assembles the WSGI application from each domain's ``includeme``, in the order below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router

from qicollab.config import apply_defaults

#: Portal templates and printed-report templates live beside the package (editable install).
PROJECT_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_DIR / "templates"
REPORTS_DIR = PROJECT_DIR / "reports"


def make_config(settings: dict[str, Any]) -> Configurator:
    """The configurator with every domain included; tests use it to build variants."""
    from qicollab.resources import root_factory  # noqa: PLC0415

    config = Configurator(settings=apply_defaults(settings), root_factory=root_factory)
    # Jinja2 for portal pages, autoescaped; templates are found by their path under templates/.
    config.include("pyramid_jinja2")
    config.add_jinja2_search_path(str(TEMPLATES_DIR), name=".jinja2")
    # The database session per request, inside the pyramid_tm transaction (with retries).
    config.include(".db")
    # Generated files (reports, pending uploads): the local folder or the database.
    config.include(".storage")
    # Deny-by-default authorization; identity is loaded by the accounts domain.
    config.include(".security")
    # Requests refused before any parse (bad encodings, huge or deep bodies, overflowing ids).
    config.include(".guards")
    # request.find_service(...): each domain's includeme registers its service factories, so
    # views ask the request for a service instead of building one (pypi/warehouse, hypothesis/h).
    config.include("pyramid_services")
    # Home, health and error pages.
    config.include(".views")
    # Domains, in dependency order.
    for domain in DOMAINS:
        config.include(domain)
    return config


#: Domain packages that register services, routes and views, one per line.
DOMAINS: list[str] = [
    "qicollab.accounts",
    "qicollab.members",
    "qicollab.measures",
    "qicollab.submissions",
    "qicollab.cycles",
    "qicollab.improvement",
    "qicollab.notifications",
    "qicollab.audit",
    "qicollab.api",
    "qicollab.jobs",
    "qicollab.benchmarking",
    "qicollab.reporting",
]


def main(global_config: dict[str, Any] | None = None, **settings: Any) -> Router:
    """The ``paste.app_factory`` entry point: build the WSGI application."""
    return make_config(settings).make_wsgi_app()
