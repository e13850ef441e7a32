"""Benchmark runs over a locked snapshot, and the stored, reproducible results they produce.

``services.BenchmarkRunService`` creates and executes runs; ``snapshot`` decides which
submission versions a run uses; ``loading`` reads them into data frames; ``compute`` turns them
into results with the pure statistics core; ``charts`` builds the stored control charts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """Nothing to route yet: the portal reads stored results through the reporting domain."""
