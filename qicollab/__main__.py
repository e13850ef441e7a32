"""``python -m qicollab`` runs the command line."""

from qicollab.cli import cli

cli()
