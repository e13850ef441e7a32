"""``qicollab serve``: the portal on waitress, configured from the ini as ``pserve`` would.

The listening sockets are bound before anything else happens, so a taken port is reported at
once with a free one to try (not after the demo's minutes of work), and the database is checked
before the app is built, so an unmigrated or empty database is refused with the command that
fixes it instead of being served as a portal nobody can use.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from qicollab.cli import cli
from qicollab.cli.context import LazyApp

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6543
#: How far above a taken port to look for a free one to suggest.
PORT_SEARCH = 50


class PortInUseError(click.ClickException):
    """The address is taken; the message names a free port to try instead."""


def server_settings(app: LazyApp) -> dict[str, str]:
    """The waitress settings of the ini's ``[server:main]``, read through plaster as pserve does.

    Only keys waitress knows are kept (plaster also hands over ``here`` and ``__file__``).
    """
    from waitress.adjustments import Adjustments  # noqa: PLC0415

    uri = app.settings.get("qicollab.config_uri")
    if not uri:
        return {}
    import plaster  # noqa: PLC0415

    loader = plaster.get_loader(uri, protocols=["wsgi"])
    if "server:main" not in loader.get_sections():
        return {}
    raw = dict(loader.get_settings("server:main"))
    use = str(raw.get("use", "egg:waitress#main")).strip()
    if use not in {"egg:waitress#main", "egg:waitress"}:
        msg = f"[server:main] of {uri} uses {use}; qicollab serve runs waitress (use pserve)"
        raise click.ClickException(msg)
    known = {name for name, _ in Adjustments._params}
    return {key: str(value) for key, value in raw.items() if key in known}


def listen_addresses(settings: dict[str, str], host: str | None, port: int | None) -> list[str]:
    """``host:port`` entries to bind: ``--host``/``--port`` win over the ini's address."""
    if host is None and port is None and settings.get("listen"):
        return settings["listen"].split()
    ini_host, ini_port = DEFAULT_HOST, DEFAULT_PORT
    first = settings.get("listen", "").split()[:1]
    if first:
        listed_host, _, listed_port = first[0].rpartition(":")
        ini_host, ini_port = listed_host.strip("[]") or ini_host, int(listed_port)
    chosen_host = host or settings.get("host") or ini_host
    chosen_port = port or int(settings.get("port") or ini_port)
    shown = f"[{chosen_host}]" if ":" in chosen_host else chosen_host
    return [f"{shown}:{chosen_port}"]


def _bind(family: int, socktype: int, proto: int, address: Any) -> socket.socket:
    sock = socket.socket(family, socktype, proto)
    try:
        # As waitress does; on Linux this still refuses a port another socket listens on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _free_port_near(host: str, port: int) -> int | None:
    for candidate in range(port + 1, min(port + PORT_SEARCH, 65535) + 1):
        try:
            infos = socket.getaddrinfo(host, candidate, type=socket.SOCK_STREAM)
            probe = _bind(*infos[0][:3], infos[0][4])
        except OSError:
            continue
        probe.close()
        return candidate
    return None


def bind_sockets(addresses: list[str]) -> list[socket.socket]:
    """Bind every address now (not yet listening), or raise :class:`PortInUseError`."""
    from waitress.adjustments import Adjustments  # noqa: PLC0415

    parsed = Adjustments(listen=" ".join(addresses)).listen
    sockets: list[socket.socket] = []
    try:
        for family, socktype, proto, address in parsed:
            try:
                sockets.append(_bind(family, socktype, proto, address))
            except OSError as error:
                host, port = str(address[0]), int(address[1])
                if error.errno != errno.EADDRINUSE:
                    msg = f"cannot listen on {host}:{port}: {error.strerror}"
                    raise click.ClickException(msg) from error
                free = _free_port_near(host, port)
                hint = f"; try --port {free}" if free else ""
                msg = f"port {port} is in use{hint}"
                raise PortInUseError(msg) from error
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _fix(app: LazyApp, command: str) -> str:
    """A command line as the user should type it (with their --config, if they gave one)."""
    uri = app.config_uri
    return f"qicollab --config {uri} {command}" if uri else f"qicollab {command}"


def database_problem(app: LazyApp) -> str | None:
    """Why this database cannot be served (missing, unmigrated, empty), with the fix; or None."""
    from qicollab.accounts.models import User  # noqa: PLC0415
    from qicollab.migrations import current_revision, head_revision  # noqa: PLC0415

    url = sa.make_url(app.settings["sqlalchemy.url"])
    shown = url.render_as_string(hide_password=True)
    where = ""
    if "qicollab.config_uri" not in app.settings:
        where = (
            f" (no development.ini in {Path.cwd()}, so the defaults were used: run qicollab "
            "from the project folder or give --config FILE)"
        )
    file_based = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if file_based and not Path(str(url.database)).exists():
        return (
            f"there is no database at {url.database}{where}. Create it with "
            f"`{_fix(app, 'db upgrade')}`, or build the demo with `{_fix(app, 'demo')}`."
        )
    current, head = current_revision(app.engine), head_revision()
    if current != head:
        state = "has no tables" if current is None else f"is at revision {current}"
        return (
            f"the database {shown} {state}, this version of qicollab needs {head}{where}. "
            f"Migrate it with `{_fix(app, 'db upgrade')}`."
        )
    with app.engine.connect() as connection:
        users = connection.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()
    if not users:
        return (
            f"the database {shown} has no users, so nobody could sign in{where}. Load the demo "
            f"with `{_fix(app, 'demo')}`, or add a user with "
            f"`{_fix(app, 'users add EMAIL --role coordinator --password-stdin')}`."
        )
    return None


@contextlib.contextmanager
def reserved(addresses: list[str]) -> Iterator[list[socket.socket]]:
    """The bound sockets, closed when the block ends without handing them to waitress."""
    sockets = bind_sockets(addresses)
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def make_server(app: LazyApp, sockets: list[socket.socket], settings: dict[str, str]) -> Any:
    """The waitress server of the app on already-bound sockets, with the ini's settings.

    A trusted proxy in the settings makes waitress take the client address and the scheme
    from the forwarded headers, which the login throttle and the Secure cookie rely on.
    """
    import waitress  # noqa: PLC0415

    from qicollab import main  # noqa: PLC0415

    wsgi = main({}, **app.settings, **{"db.engine": app.engine})
    options: dict[str, Any] = {
        "threads": 8,
        # A little above the upload cap so multipart overhead fits; larger bodies are refused.
        "max_request_body_size": int(app.settings["qicollab.upload_max_bytes"]) + 1024 * 1024,
        "ident": "qicollab",
        **{k: v for k, v in settings.items() if k not in {"listen", "host", "port"}},
    }
    return waitress.create_server(wsgi, sockets=sockets, **options)


def serve_app(app: LazyApp, sockets: list[socket.socket], settings: dict[str, str]) -> None:
    """Serve until interrupted."""
    server = make_server(app, sockets, settings)
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"Serving qicollab on http://{shown}:{port}/  (Ctrl+C to stop)")
    from qicollab.jobs.embedded import start_embedded  # noqa: PLC0415

    consumer = start_embedded(app.settings, engine=app.engine)  # jobs run beside the portal
    try:
        server.run()
    finally:
        if consumer is not None:
            consumer.stop()


@cli.command()
@click.option("--host", default=None, help=f"Address to listen on [default: {DEFAULT_HOST}].")
@click.option(
    "--port", default=None, type=int, help=f"Port to listen on [default: {DEFAULT_PORT}]."
)
@click.pass_obj
def serve(app: LazyApp, host: str | None, port: int | None) -> None:
    """Serve the portal with the [server:main] settings of --config (listen, threads, trusted
    proxy, forwarded headers); --host and --port override its address. Honours DATABASE_URL
    and QICOLLAB_STORAGE, and refuses a missing, unmigrated or empty database."""
    settings = server_settings(app)
    with reserved(listen_addresses(settings, host, port)) as sockets:
        problem = database_problem(app)
        if problem:
            raise click.ClickException(problem)
        serve_app(app, sockets, settings)
