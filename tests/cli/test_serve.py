"""``qicollab serve`` and ``qicollab demo`` as a newcomer and an operator meet them.

A taken port is reported before any work with a free one to try; a missing, unmigrated or empty
database is refused with the command that fixes it, leaving no ``./var`` behind; and
``serve --config production.ini`` runs with the ini's ``[server:main]``, so behind a TLS proxy
cookies are Secure, HSTS is sent and sign-in throttling is per client, not per proxy.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from qicollab.accounts.passwords import hash_password
from qicollab.cli import cli
from qicollab.db import create_engine_from_settings, get_session_factory, utcnow
from qicollab.migrations import upgrade
from tests.cycles.world import PASSWORD, build_world

ROOT = Path(__file__).resolve().parents[2]
#: Nothing from the test process's own configuration leaks into the command.
CLEAN_ENV = {"DATABASE_URL": None, "QICOLLAB_STORAGE": None, "QICOLLAB_CONFIG": None}


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _invoke(args: list[str], folder: Path, **env: str | None):
    runner = CliRunner()
    previous = Path.cwd()
    os.chdir(folder)
    try:
        return runner.invoke(cli, args, env={**CLEAN_ENV, **env}, catch_exceptions=False)
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("command", [["serve"], ["demo"]])
def test_a_taken_port_is_reported_at_once_with_a_free_one(tmp_path, taken_port, command):
    started = time.perf_counter()
    result = _invoke([*command, "--port", str(taken_port)], tmp_path)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 1
    match = re.search(rf"port {taken_port} is in use; try --port (\d+)", result.output)
    assert match, result.output
    suggested = int(match.group(1))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested))  # the suggestion really is free
    # Nothing was built, migrated or created before the refusal, and no traceback.
    assert not (tmp_path / "var").exists()
    assert "Traceback" not in result.output
    assert elapsed < 10


def test_serve_refuses_a_missing_database_and_creates_no_var_folder(tmp_path):
    result = _invoke(["serve", "--port", "0"], tmp_path)
    assert result.exit_code == 1
    assert f"there is no database at {tmp_path / 'var' / 'qicollab.sqlite'}" in result.output
    assert "no development.ini" in result.output
    assert "`qicollab db upgrade`" in result.output
    assert not (tmp_path / "var").exists()


def test_serve_refuses_an_unmigrated_then_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'portal.sqlite'}"
    (tmp_path / "portal.sqlite").touch()
    unmigrated = _invoke(["serve", "--port", "0"], tmp_path, DATABASE_URL=url)
    assert unmigrated.exit_code == 1
    assert "has no tables" in unmigrated.output
    assert "Migrate it with `qicollab db upgrade`" in unmigrated.output
    assert _invoke(["db", "upgrade"], tmp_path, DATABASE_URL=url).exit_code == 0
    empty = _invoke(["serve", "--port", "0"], tmp_path, DATABASE_URL=url)
    assert empty.exit_code == 1
    assert "has no users, so nobody could sign in" in empty.output
    assert "`qicollab demo`" in empty.output


# --- production settings behind a TLS-terminating proxy ---------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """``qicollab --config site.ini serve`` in a subprocess; its trusted proxy is 127.0.0.1
    (where the test's requests come from) unless the test names another address."""
    proxy = getattr(request, "param", "127.0.0.1")
    database = tmp_path / "portal.sqlite"
    engine = create_engine_from_settings({"sqlalchemy.url": f"sqlite:///{database}"})
    upgrade(engine)
    session = get_session_factory(engine)()
    world = build_world(session, utcnow(), password_hash=hash_password(PASSWORD))
    email = world.users["officer"].email
    session.commit()
    session.close()
    engine.dispose()
    port = _free_port()
    ini = tmp_path / "site.ini"
    ini.write_text(
        (ROOT / "production.ini")
        .read_text()
        .replace("listen = 127.0.0.1:6543", f"listen = 127.0.0.1:{port}")
        .replace("mail.mailer = smtp", "mail.mailer = console")
        .replace("qicollab.secure_cookies = true", "qicollab.secure_cookies = false")
        .replace("trusted_proxy = 127.0.0.1", f"trusted_proxy = {proxy}")
        # A wait long enough that a slow machine cannot outlast it between two requests.
        .replace("[app:main]\n", "[app:main]\nqicollab.login_first_delay_seconds = 300\n", 1)
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{database}",
        "QICOLLAB_STORAGE": str(tmp_path / "storage"),
        "QICOLLAB_SECRET": "proxy-test-secret-" + "0" * 40,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "qicollab", "--config", str(ini), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _request(port, "GET", "/health")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read() if process.stdout else "") from None
                time.sleep(0.2)
        yield port, email
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(method, path, body=body or None, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _proxied(client: str, *, https: bool = True) -> dict[str, str]:
    """Headers the TLS proxy adds for a browser at ``client``."""
    headers = {"Host": "qi.example.org", "X-Forwarded-For": client}
    if https:
        headers["X-Forwarded-Proto"] = "https"
    return headers


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    return {
        header.split("=", 1)[0]: header
        for name, header in response.getheaders()
        if name.lower() == "set-cookie"
    }


def _login(port: int, client: str, email: str, password: str) -> http.client.HTTPResponse:
    """GET the form, then POST it back with its CSRF cookie and token, as a browser does."""
    page_connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    page_connection.request("GET", "/login", headers=_proxied(client))
    page = page_connection.getresponse()
    text = page.read().decode()
    page_connection.close()
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    cookie = _cookies(page)["qicollab_csrf"].split(";", 1)[0]
    form = f"csrf_token={token}&email={email}&password={password.replace(' ', '+')}"
    return _request(
        port,
        "POST",
        "/login",
        {
            **_proxied(client),
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://qi.example.org",
            "Referer": "https://qi.example.org/login",
        },
        form,
    )


def test_behind_a_tls_proxy_cookies_are_secure_hsts_is_sent_and_throttling_is_per_client(served):
    port, email = served
    # Through the proxy over HTTPS: HSTS, and the pre-session CSRF cookie is Secure.
    page = _request(port, "GET", "/login", _proxied("203.0.113.5"))
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") == "max-age=31536000"
    assert "; secure" in _cookies(page)["qicollab_csrf"].lower()
    # Plain HTTP (the proxy says so): no HSTS, no Secure (secure_cookies is off in this ini).
    plain = _request(port, "GET", "/login", _proxied("203.0.113.5", https=False))
    assert plain.getheader("Strict-Transport-Security") is None
    assert "; secure" not in _cookies(plain)["qicollab_csrf"].lower()
    # Ten wrong passwords from one client slow that client only: every request comes from the
    # proxy's address, yet the owner at another client address signs in at once.
    for _ in range(10):
        assert _login(port, "203.0.113.66", email, "not the password at all").status == 401
    assert _login(port, "203.0.113.66", email, PASSWORD).status == 429
    signed_in = _login(port, "198.51.100.7", email, PASSWORD)
    assert signed_in.status == 303
    session_cookie = _cookies(signed_in)["qicollab_session"].lower()
    assert "; secure" in session_cookie
    assert "; httponly" in session_cookie


@pytest.mark.parametrize("served", ["192.0.2.1"], indirect=True)
def test_forwarded_headers_from_an_address_that_is_not_the_proxy_are_ignored(served):
    port, _ = served
    # Someone reaching waitress directly cannot claim HTTPS or another client address.
    page = _request(port, "GET", "/login", _proxied("203.0.113.5"))
    assert page.status == 200
    assert page.getheader("Strict-Transport-Security") is None
    assert "; secure" not in _cookies(page)["qicollab_csrf"].lower()


def test_serve_reads_server_main_as_pserve_does(tmp_path, monkeypatch):
    from qicollab.cli.context import LazyApp
    from qicollab.cli.serve import listen_addresses, server_settings

    ini = tmp_path / "site.ini"
    ini.write_text((ROOT / "production.ini").read_text())
    app = LazyApp(str(ini))
    monkeypatch.setenv("QICOLLAB_SECRET", "x" * 64)
    settings = server_settings(app)
    # The ini's [server:main] is what waitress gets, as pserve would pass it.
    assert settings["trusted_proxy"] == "127.0.0.1"
    assert settings["trusted_proxy_headers"] == "x-forwarded-for x-forwarded-proto"
    assert settings["threads"] == "8"
    assert "here" not in settings
    assert "__file__" not in settings
    assert listen_addresses(settings, None, None) == ["127.0.0.1:6543"]
    assert listen_addresses(settings, None, 7000) == ["127.0.0.1:7000"]
    assert listen_addresses(settings, "0.0.0.0", None) == ["0.0.0.0:6543"]
