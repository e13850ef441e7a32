"""The portal served by waitress on a free loopback port, in a thread, for real-browser tests.

A fresh SQLite file is migrated and filled with the small workflow collaborative (dates relative
to the real clock, so this year's cycle is open). Until the accounts domain's login exists, a
tiny WSGI wrapper turns a test cookie into the test identity the app's loader reads; afterwards
the browser signs in through the login form like a person.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import waitress

from qicollab.accounts.passwords import hash_password
from qicollab.db import create_engine_from_settings, get_session_factory, utcnow
from qicollab.migrations import upgrade
from tests.cycles.world import PASSWORD, USER_KEY, World, build_world, make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TEST_COOKIE = "qicollab_test_user"


class CookieIdentity:
    """WSGI wrapper: the ``qicollab_test_user`` cookie becomes the test identity."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == TEST_COOKIE and value.isdigit():
                environ[USER_KEY] = value
        return self.app(environ, start_response)


@dataclass
class LivePortal:
    """A running portal and the collaborative inside it."""

    url: str
    world: World
    test_login: bool
    settings: dict[str, Any]
    engine: Any

    def sign_in(self, context: Any, page: Any, name: str) -> None:
        """Sign ``name`` in: the login form when it exists, else the test cookie."""
        user = self.world.users[name]
        if self.test_login:
            context.add_cookies([{"name": TEST_COOKIE, "value": str(user.id), "url": self.url}])
            return
        page.goto(f"{self.url}/login")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form").filter(has=page.locator("input[name=password]")).locator(
            "button[type=submit], input[type=submit]"
        ).first.click()
        page.wait_for_load_state()


@contextlib.contextmanager
def live_portal(folder: Path, **extra_settings: str) -> Iterator[LivePortal]:
    """Serve a freshly migrated portal until the block ends (``extra_settings`` win)."""
    settings = {
        "sqlalchemy.url": f"sqlite:///{folder / 'portal.sqlite'}",
        "qicollab.storage": str(folder / "storage"),
        "qicollab.secret": "browser-test-secret",
        "mail.mailer": "console",
        **extra_settings,
    }
    engine = create_engine_from_settings(settings)
    upgrade(engine)
    session = get_session_factory(engine)()
    world = build_world(session, utcnow(), password_hash=hash_password(PASSWORD))
    session.commit()
    session.close()
    app = make_app(settings, engine)
    test_login = bool(app.registry.get("qicollab.test_loader"))
    server = waitress.create_server(
        CookieIdentity(app) if test_login else app, host="127.0.0.1", port=0, threads=4
    )
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.effective_port}"
        yield LivePortal(url, world, test_login, settings, engine)
    finally:
        # Closing every channel empties waitress's socket map, which ends its loop.
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)
        engine.dispose()
