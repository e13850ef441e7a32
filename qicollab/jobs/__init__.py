"""Long work (benchmark runs, report batches, big imports) as jobs with progress.

The portal polls ``/jobs/{job_id}`` for a job's status document; the CLI follows the same row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.request import Request

    from qicollab.jobs.services import JobService


def job_service_factory(_context: object, request: Request) -> JobService:
    """Jobs over the app's session factory: each change commits on its own, so a poller sees
    progress while the work runs."""
    from qicollab.jobs.services import JobService  # noqa: PLC0415

    return JobService(request.registry["db.session_factory"])


def includeme(config: Configurator) -> None:
    """The job service and the job status route (JSON)."""
    from qicollab.jobs.services import JobService  # noqa: PLC0415
    from qicollab.jobs.views import job_factory  # noqa: PLC0415

    config.register_service_factory(job_service_factory, iface=JobService)

    config.add_route("jobs.status", "/jobs/{job_id}", factory=job_factory)
    config.scan(".views")
