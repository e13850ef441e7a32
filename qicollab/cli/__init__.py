"""The ``qicollab`` command line: the same services as the portal, from the shell.

Every module in this package registers its commands on :data:`cli` when imported, so a new
command is just a new module (the pattern pypi/warehouse uses). The application configuration is
built lazily, only for commands that need the database.
"""

from __future__ import annotations

import importlib
import pkgutil

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_uri",
    envvar="QICOLLAB_CONFIG",
    default=None,
    help="Ini file with the app settings (default: development.ini when present).",
)
@click.pass_context
def cli(ctx: click.Context, config_uri: str | None) -> None:
    """qicollab: quality-improvement collaboratives, from submissions to benchmark reports."""
    from qicollab.cli.context import LazyApp  # noqa: PLC0415 - keeps --help fast

    ctx.obj = LazyApp(config_uri)
    ctx.call_on_close(ctx.obj.close)


def _register_commands() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_commands()
