"""Contexts of routes that name a submitted version or batch: loaded once, scoped once.

Each one is its member's :class:`~qicollab.resources.MemberResource` (the member's ACL decides)
plus the object; versions and batches outside the user's collaborative are 404, like unknown ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyramid.httpexceptions import HTTPNotFound

from qicollab.permissions import Permission
from qicollab.resources import MemberResource, member_factory, of_member, path_id, with_member
from qicollab.submissions.models import Submission, SubmissionBatch

if TYPE_CHECKING:
    from pyramid.request import Request


@dataclass
class SubmissionResource(MemberResource):
    """One version of a member's data."""

    submission: Submission


@dataclass
class BatchResource(MemberResource):
    """One upload, form save or API call of a member."""

    batch: SubmissionBatch


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
