"""The app assembles, serves its public pages, and hides everything else."""

from __future__ import annotations

import sqlalchemy as sa


def test_home_page_is_public(webapp):
    response = webapp.get("/")
    assert "qicollab" in response.text
    assert response.content_type == "text/html"


def test_health_checks_the_migrated_database(webapp):
    response = webapp.get("/health")
    assert response.json["status"] == "ok"
    assert response.json["database"] == "ok"


def test_health_reports_an_unmigrated_database(webapp, engine):
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'old'"))
    response = webapp.get("/health", status=503)
    assert response.json["database"] == "not migrated"


def test_unknown_page_is_a_friendly_404(webapp):
    response = webapp.get("/no/such/page", status=404)
    assert "Page not found" in response.text


def test_view_without_permission_is_denied(app, webapp):
    """A view that names no permission gets the default one, which nobody holds."""
    from pyramid.config import Configurator

    registry = app.registry
    config = Configurator(registry=registry)
    config.add_route("forgetful", "/forgetful")
    config.add_view(lambda request: {"secret": 1}, route_name="forgetful", renderer="json")
    config.commit()
    response = webapp.get("/forgetful", status=403)
    assert "secret" not in response.text
