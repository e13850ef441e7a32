"""``qicollab serve``: the portal on waitress."""

from __future__ import annotations

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


def serve_app(app: LazyApp, host: str, port: int) -> None:
    """Serve the WSGI app; the request body limit matches the upload cap."""
    import waitress  # noqa: PLC0415

    from qicollab import main  # noqa: PLC0415

    wsgi = main({}, **app.settings, **{"db.engine": app.engine})
    limit = int(app.settings["qicollab.upload_max_bytes"])
    click.echo(f"Serving qicollab on http://{host}:{port}/  (Ctrl+C to stop)")
    waitress.serve(
        wsgi,
        host=host,
        port=port,
        threads=8,
        # A little above the upload cap so multipart overhead fits; larger bodies are refused.
        max_request_body_size=limit + 1024 * 1024,
        ident="qicollab",
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=6543, show_default=True, type=int, help="Port to listen on.")
@click.pass_obj
def serve(app: LazyApp, host: str, port: int) -> None:
    """Serve the portal. Honours DATABASE_URL and QICOLLAB_STORAGE."""
    serve_app(app, host, port)
