"""The job status document, polled by portal pages that started long work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow
from pyramid.httpexceptions import HTTPNotFound
from pyramid.renderers import render_to_response
from pyramid.view import view_config

from qicollab.jobs.models import Job
from qicollab.jobs.services import JobState, task_counts
from qicollab.permissions import Permission
from qicollab.resources import ADMIN, COORDINATOR, path_id, signed_in

if TYPE_CHECKING:
    from pyramid.request import Request


@dataclass
class JobResource:
    """One job: its creator and the collaborative's coordinators may read it; only
    coordinators (who manage the collaborative) see which workers did its tasks."""

    request: Request
    job: Job

    def __acl__(self) -> list[tuple[str, str, object]]:
        acl: list[tuple[str, str, object]] = [
            (Allow, ADMIN, ALL_PERMISSIONS),
            (Allow, COORDINATOR, (Permission.COLLABORATIVE_VIEW, Permission.COLLABORATIVE_MANAGE)),
        ]
        if self.job.created_by_id is not None:
            acl.append((Allow, f"user:{self.job.created_by_id}", Permission.COLLABORATIVE_VIEW))
        acl.append(DENY_ALL)
        return acl


def job_factory(request: Request) -> JobResource:
    """The job of ``/jobs/{job_id}``; unknown ids and other collaboratives' jobs are 404."""
    user = signed_in(request)
    job = request.db.get(Job, path_id(request, "job_id"))
    if job is None or job.collaborative_id not in {None, user.collaborative_id}:
        raise HTTPNotFound
    return JobResource(request, job)


@view_config(
    route_name="jobs.status",
    renderer="json",
    request_method="GET",
    permission=Permission.COLLABORATIVE_VIEW,
)
def job_status(context: JobResource, request: Request) -> Any:
    """Status, progress (done/total, and by worker for coordinators), message, error and
    result of a job; never cached.

    A browser (asking for HTML) gets a page that refreshes until the job ends; programs get
    the JSON document."""
    state = JobState.of(context.job, tasks=task_counts(request.db, context.job.id))
    if not request.has_permission(Permission.COLLABORATIVE_MANAGE, context):
        state = state.without_workers()
    if "text/html" in request.headers.get("Accept", ""):
        response = render_to_response("jobs/status.jinja2", {"job": state}, request=request)
        response.cache_control = "no-store"
        return response
    request.response.cache_control = "no-store"
    return state.to_json()
