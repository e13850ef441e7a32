"""Fixtures for the reporting tests: a run with stored results, a portal with chosen users, and
the three reports of a run rendered once per module (PDF layout is the slow part).

Until the accounts domain's login is used here, the portal gets a test identity loader (the user
id in the WSGI environ), as the submission portal's tests do; views only use
``request.identity``, so they behave the same once real sessions are in place.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest
from pypdf import PdfReader
from pyramid.csrf import CookieCSRFStoragePolicy

from qicollab import make_config
from qicollab.accounts.models import User
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.reporting import page_cache
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context
from qicollab.reporting.results import load_run
from qicollab.security import IDENTITY_LOADER_KEY
from qicollab.storage import LocalFileStore
from tests.reporting.world import World, build_world

USER_KEY = "qicollab.test_user_id"


def _loader(request):
    raw = request.environ.get(USER_KEY)
    return None if raw is None else request.db.get(User, int(raw))


class Portal:
    """WebTest as one of the world's users (or anonymous)."""

    def __init__(self, app: Any, world: World) -> None:
        self.app = app
        self.world = world

    def as_user(self, name: str | None) -> webtest.TestApp:
        environ = {"REMOTE_ADDR": "127.0.0.1"}
        if name is not None:
            environ[USER_KEY] = str(self.world.users[name])
        return webtest.TestApp(self.app, extra_environ=environ)


@pytest.fixture
def world(db_session) -> World:
    """A collaborative of 12 members with a finished run (on each backend)."""
    page_cache.forget()  # the last test's world had the same URL, run id and stamp
    return build_world(db_session)


@pytest.fixture
def portal(settings, engine, world) -> Portal:
    """The app with the test identity loader and cookie CSRF."""
    config = make_config({**settings, "db.engine": engine})
    config.registry[IDENTITY_LOADER_KEY] = _loader
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    return Portal(config.make_wsgi_app(), world)


@pytest.fixture
def reports(world, settings, db_session) -> dict[tuple[str, int | None], int]:
    """Member A's and B's reports, the collaborative report and the blinded summary, as
    stored files and rows (rendering itself is tested in test_rendering)."""
    storage = Path(settings["qicollab.storage"])
    specs = [
        ReportSpec(ReportKind.MEMBER, world.member),
        ReportSpec(ReportKind.MEMBER, world.other),
        ReportSpec(ReportKind.COLLABORATIVE),
        ReportSpec(ReportKind.BLINDED_SUMMARY),
    ]
    out = {}
    for spec in specs:
        relative = f"reports/run-{world.run_id}/{spec.filename}"
        written = LocalFileStore(storage).put(relative, b"%PDF-1.7 " + spec.filename.encode())
        row = Report(
            run_id=world.run_id,
            kind=spec.kind,
            member_id=spec.member_id,
            path=relative,
            sha256=written.sha256,
            size_bytes=written.size_bytes,
        )
        db_session.add(row)
        db_session.flush()
        out[(spec.kind.value, spec.member_id)] = row.id
    db_session.commit()
    return out


@dataclass
class Rendered:
    """A report rendered once: its HTML, PDF bytes and text."""

    html: str
    pdf: bytes
    text: str
    reader: PdfReader


@dataclass
class RenderedRun:
    """The three kinds of report of one run, and the world they describe."""

    world: World
    member: Rendered
    other_member: Rendered
    collaborative: Rendered
    summary: Rendered
    storage: Path
    settings: dict[str, Any]


def render(session, run, spec: ReportSpec) -> Rendered:
    """Render one report in this process (HTML kept for the table checks)."""
    import io

    from qicollab.reporting.pdf import PdfRenderer

    renderer = PdfRenderer()
    html = renderer.html(TEMPLATES[spec.kind], report_context(session, run, spec))
    pdf = renderer.pdf_from_html(html)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return Rendered(html, pdf, text, reader)


def _sqlite_world(template: Path, folder: Path, **options: Any) -> tuple[dict[str, Any], World]:
    database = folder / "reports.sqlite"
    shutil.copyfile(template, database)
    settings = {
        "sqlalchemy.url": f"sqlite:///{database}",
        "qicollab.storage": str(folder / "storage"),
        "qicollab.secret": "test-secret",
    }
    engine = create_engine_from_settings(settings)
    with get_session_factory(engine)() as session:
        world = build_world(session, **options)
    engine.dispose()
    return settings, world


@pytest.fixture(scope="module")
def rendered(sqlite_template, tmp_path_factory) -> RenderedRun:
    """A member's report, another member's, the collaborative report and the blinded summary
    of one run (SQLite; the portal tests cover both databases)."""
    folder = tmp_path_factory.mktemp("rendered")
    settings, world = _sqlite_world(sqlite_template, folder)
    engine = create_engine_from_settings(settings)
    with get_session_factory(engine)() as session:
        run = load_run(session, world.run_id)
        result = RenderedRun(
            world=world,
            member=render(session, run, ReportSpec(ReportKind.MEMBER, world.member)),
            other_member=render(session, run, ReportSpec(ReportKind.MEMBER, world.other)),
            collaborative=render(session, run, ReportSpec(ReportKind.COLLABORATIVE)),
            summary=render(session, run, ReportSpec(ReportKind.BLINDED_SUMMARY)),
            storage=folder / "storage",
            settings=settings,
        )
    engine.dispose()
    return result


@pytest.fixture(scope="module")
def run_data(rendered):
    """The rendered run's data, as the reports read it (qicollab.reporting.results)."""
    engine = create_engine_from_settings(rendered.settings)
    with get_session_factory(engine)() as session:
        data = load_run(session, rendered.world.run_id)
    engine.dispose()
    return data


@pytest.fixture(scope="module")
def hostile(sqlite_template, tmp_path_factory) -> tuple[dict[str, Any], World]:
    """A world whose member name, measure title and annotation carry markup and URLs."""
    folder = tmp_path_factory.mktemp("hostile")
    return _sqlite_world(sqlite_template, folder, hostile=True, seed=11)
