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


def test_unexpected_errors_render_a_500_page_without_details(app, webapp):
    from pyramid.config import Configurator
    from pyramid.security import NO_PERMISSION_REQUIRED

    def explode(request):
        msg = "secret submitted value 123-45-6789"
        raise RuntimeError(msg)

    config = Configurator(registry=app.registry)
    config.add_route("explode", "/explode")
    config.add_view(explode, route_name="explode", permission=NO_PERMISSION_REQUIRED)
    config.commit()
    response = webapp.get("/explode", status=500)
    assert "Something went wrong" in response.text
    assert "123-45-6789" not in response.text


def test_paste_entry_point_builds_the_app(database_url, tmp_path):
    from importlib.metadata import entry_points

    (factory,) = [e for e in entry_points(group="paste.app_factory") if e.name == "main"]
    app = factory.load()({}, **{"sqlalchemy.url": database_url, "qicollab.storage": str(tmp_path)})
    assert app.registry.settings["sqlalchemy.url"] == database_url
    app.registry["db.engine"].dispose()
