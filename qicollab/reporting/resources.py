"""Contexts of routes that name a benchmark run or a rendered report: loaded once, scoped once.

A run or report of another collaborative is 404, like an unknown one; so is, for members, a run
whose cycle is not published yet (it is no run at all for them, however its id was learnt).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow, Authenticated
from pyramid.httpexceptions import HTTPNotFound

from qicollab.permissions import Permission
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.results import ResultsNotFoundError, find_run
from qicollab.resources import ADMIN, COLLABORATIVE_ACL, COORDINATOR, Root, path_id, signed_in

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.benchmarking.models import BenchmarkRun


def _visible_run(request: Request, run_id: int) -> BenchmarkRun:
    """The run if the user may see it: of their collaborative, and published unless they
    coordinate; else 404."""
    user = signed_in(request)
    coordinates = request.has_permission(Permission.COLLABORATIVE_VIEW, Root(request))
    try:
        return find_run(request.db, user.collaborative_id, run_id, published_only=not coordinates)
    except ResultsNotFoundError:
        raise HTTPNotFound from None


@dataclass
class RunResource:
    """A benchmark run: a collaborative-wide object, so the collaborative's ACL applies."""

    request: Request
    run: BenchmarkRun
    __acl__ = COLLABORATIVE_ACL


def run_factory(request: Request) -> RunResource:
    """``/runs/{run_id}/...``: the run, 404 unless the user may see it."""
    return RunResource(request, _visible_run(request, path_id(request, "run_id")))


@dataclass
class ReportResource:
    """A rendered report: its member's readers, every member for the blinded summary,
    coordinators for everything."""

    request: Request
    report: Report

    def __acl__(self) -> list[tuple[str, str, object]]:
        acl: list[tuple[str, str, object]] = [
            (Allow, ADMIN, ALL_PERMISSIONS),
            (Allow, COORDINATOR, Permission.MEMBER_VIEW),
        ]
        if self.report.kind is ReportKind.MEMBER:
            member = f"member:{self.report.member_id}"
            acl += [
                (Allow, f"{member}:quality_officer", Permission.MEMBER_VIEW),
                (Allow, f"{member}:member_viewer", Permission.MEMBER_VIEW),
            ]
        elif self.report.kind is ReportKind.BLINDED_SUMMARY:
            acl.append((Allow, Authenticated, Permission.MEMBER_VIEW))
        acl.append(DENY_ALL)
        return acl


def report_factory(request: Request) -> ReportResource:
    """``/reports/{report_id}/...``: the report, 404 unless the user may see its run."""
    signed_in(request)
    report = request.db.get(Report, path_id(request, "report_id"))
    if report is None:
        raise HTTPNotFound
    _visible_run(request, report.run_id)
    return ReportResource(request, report)
