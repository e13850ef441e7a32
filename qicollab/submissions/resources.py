"""Contexts of routes that name a submitted version or batch: loaded once, scoped once.

Each one is its member's :class:`~qicollab.resources.MemberResource` (the member's ACL decides)
plus the object; versions and batches outside the user's collaborative are 404, like unknown ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPNotFound

from qicollab.measures.models import DataLevel, Measure
from qicollab.permissions import Permission
from qicollab.resources import MemberResource, member_factory, of_member, path_id, with_member
from qicollab.submissions.models import Submission, SubmissionBatch

if TYPE_CHECKING:
    from pyramid.request import Request

    from qicollab.members.models import Member


@dataclass
class SubmissionResource(MemberResource):
    """One version of a member's data."""

    submission: Submission


@dataclass
class BatchResource(MemberResource):
    """One upload, form save or API call of a member."""

    batch: SubmissionBatch


@dataclass
class MeasureResource(MemberResource):
    """A member's page about one active measure of its collaborative (template, entry grid)."""

    measure: Measure


def active_measure(request: Request, member: Member, code: str | None) -> Measure:
    """An active measure of the member's collaborative by code (from a path, a form or a
    pending upload), else 404."""
    measure = request.db.scalar(
        sa.select(Measure).where(
            Measure.collaborative_id == member.collaborative_id,
            Measure.code == (code or ""),
            Measure.active.is_(True),
        )
    )
    if measure is None:
        raise HTTPNotFound
    return measure


def measure_factory(request: Request) -> MeasureResource:
    """``/members/{member_id}/measures/{measure_code}/...``: the member (404 outside the
    collaborative) and the measure."""
    member = member_factory(request).member
    return MeasureResource(
        request, member, active_measure(request, member, request.matchdict.get("measure_code"))
    )


def aggregate_measure_factory(request: Request) -> MeasureResource:
    """As :func:`measure_factory`, for the entry grid: only measures submitted as aggregate
    counts have one, so a patient-level measure is 404."""
    context = measure_factory(request)
    if context.measure.level is not DataLevel.AGGREGATE:
        raise HTTPNotFound
    return context


def submission_factory(request: Request) -> SubmissionResource:
    """``/submissions/{submission_id}/...``: the version and its member, 404 outside the
    collaborative; within it the member's ACL decides (coordinators review any version)."""
    submission, member = with_member(request, Submission, path_id(request, "submission_id"))
    return SubmissionResource(request, member, submission)


def readable_submission_factory(request: Request) -> SubmissionResource:
    """As :func:`submission_factory`, and a version the user may not read is 404 too: the API
    answers for another member's versions as if they did not exist."""
    context = submission_factory(request)
    if not request.has_permission(Permission.MEMBER_VIEW, context):
        raise HTTPNotFound
    return context


def batch_factory(request: Request) -> BatchResource:
    """``/members/{member_id}/batches/{batch_id}``: a batch of that member, else 404."""
    member = member_factory(request).member
    return BatchResource(request, member, of_member(request, member, SubmissionBatch, "batch_id"))
