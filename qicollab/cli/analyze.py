"""``qicollab analyze``: the statistics engine on a CSV file, no database needed."""

from __future__ import annotations

import click

from qicollab.cli import cli


@cli.group()
def analyze() -> None:
    """Run the benchmarking and SPC engine on a CSV file and print JSON."""
