"""Long work (benchmark runs, report batches, big imports) as jobs with progress.

The portal polls ``/jobs/{job_id}`` for a job's status document; the CLI follows the same row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    """The job status route (JSON)."""
    from qicollab.jobs.views import job_factory  # noqa: PLC0415

    config.add_route("jobs.status", "/jobs/{job_id}", factory=job_factory)
    config.scan(".views")
