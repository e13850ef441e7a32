"""Which submission versions a run uses, and the hash that names them with the settings.

A cycle's snapshot is, for every member x measure x period inside the cycle, the current accepted
version (the highest accepted version number; corrections supersede older versions). A run may
instead name an explicit list of versions, e.g. to reproduce an earlier run after corrections.
Submitted content never changes (versions are append-only), so the sorted ids plus the method
settings determine every number: equal hashes, equal numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.cycles.models import LearningCycle, ReportingPeriod, cycle_measures
from qicollab.members.models import Member
from qicollab.submissions.models import Submission, SubmissionStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class SnapshotError(ValueError):
    """The snapshot cannot be used: unlocked cycle, unknown or conflicting versions."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exact versions of a run, sorted, with the hash over them and the settings."""

    submission_ids: tuple[int, ...]
    hash: str
    measure_ids: tuple[int, ...]
    #: measure id -> its sorted version ids (measures without data map to an empty tuple).
    by_measure: dict[int, tuple[int, ...]]

    def __len__(self) -> int:
        return len(self.submission_ids)


def _canonical(value: Any) -> Any:
    """JSON-stable form: sorted keys happen in dumps; floats that are integers stay floats."""
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def canonical_settings(settings: Mapping[str, Any]) -> str:
    """The settings as canonical JSON (sorted keys, no spaces): the hashed form."""
    return json.dumps(
        _canonical(settings), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )


def snapshot_hash(submission_ids: Iterable[int], settings: Mapping[str, Any]) -> str:
    """SHA-256 over the sorted version ids and the canonical settings JSON."""
    ids = sorted({int(i) for i in submission_ids})
    digest = hashlib.sha256()
    digest.update(b"submissions:")
    digest.update(",".join(str(i) for i in ids).encode())
    digest.update(b"\nsettings:")
    digest.update(canonical_settings(settings).encode())
    return digest.hexdigest()


def cycle_periods(session: Session, cycle: LearningCycle) -> list[ReportingPeriod]:
    """Every reporting period (months and years) that lies inside the cycle's range."""
    return list(
        session.scalars(
            sa.select(ReportingPeriod)
            .where(
                ReportingPeriod.collaborative_id == cycle.collaborative_id,
                ReportingPeriod.start_date >= cycle.first_period_start,
                ReportingPeriod.end_date <= cycle.last_period_end,
            )
            .order_by(ReportingPeriod.start_date, ReportingPeriod.end_date)
        )
    )


def cycle_measure_ids(session: Session, cycle_id: int) -> list[int]:
    """The measures a cycle collects, in id order."""
    return sorted(
        session.scalars(
            sa.select(cycle_measures.c.measure_id).where(cycle_measures.c.cycle_id == cycle_id)
        )
    )


def cycle_submission_ids(session: Session, cycle: LearningCycle) -> list[tuple[int, int]]:
    """(id, measure id) of the current accepted version per member x measure x period of the
    cycle, sorted by id."""
    ranked = (
        sa.select(
            Submission.id,
            Submission.measure_id,
            sa.func.row_number()
            .over(
                partition_by=(Submission.member_id, Submission.measure_id, Submission.period_id),
                order_by=Submission.version.desc(),
            )
            .label("rank"),
        )
        .join(ReportingPeriod, ReportingPeriod.id == Submission.period_id)
        .join(cycle_measures, cycle_measures.c.measure_id == Submission.measure_id)
        .where(
            cycle_measures.c.cycle_id == cycle.id,
            Submission.status == SubmissionStatus.ACCEPTED,
            ReportingPeriod.collaborative_id == cycle.collaborative_id,
            ReportingPeriod.start_date >= cycle.first_period_start,
            ReportingPeriod.end_date <= cycle.last_period_end,
        )
        .subquery()
    )
    rows = session.execute(
        sa.select(ranked.c.id, ranked.c.measure_id).where(ranked.c.rank == 1)
    ).all()
    return sorted((row.id, row.measure_id) for row in rows)


def check_explicit_ids(
    session: Session, collaborative_id: int, submission_ids: Iterable[int]
) -> list[tuple[int, int]]:
    """Validate an explicit list: every id exists, belongs to the collaborative, is no draft,
    and no member x measure x period appears twice. Returns sorted (id, measure id) pairs."""
    ids = sorted({int(i) for i in submission_ids})
    if not ids:
        msg = "an explicit snapshot needs at least one submission id"
        raise SnapshotError(msg)
    rows = session.execute(
        sa.select(
            Submission.id,
            Submission.member_id,
            Submission.measure_id,
            Submission.period_id,
            Submission.status,
            Member.collaborative_id,
        )
        .join(Member, Member.id == Submission.member_id)
        .where(Submission.id.in_(ids))
    ).all()
    found = {row.id for row in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        msg = f"unknown submission ids: {missing[:10]}"
        raise SnapshotError(msg)
    foreign = [row.id for row in rows if row.collaborative_id != collaborative_id]
    if foreign:
        msg = f"submissions of another collaborative: {foreign[:10]}"
        raise SnapshotError(msg)
    drafts = [row.id for row in rows if row.status is SubmissionStatus.DRAFT]
    if drafts:
        msg = f"drafts cannot be benchmarked: {drafts[:10]}"
        raise SnapshotError(msg)
    cells: dict[tuple[int, int, int], int] = {}
    for row in rows:
        key = (row.member_id, row.measure_id, row.period_id)
        if key in cells:
            msg = f"submissions {cells[key]} and {row.id} are versions of the same period"
            raise SnapshotError(msg)
        cells[key] = row.id
    return sorted((row.id, row.measure_id) for row in rows)


def resolve(
    session: Session,
    *,
    collaborative_id: int,
    settings: Mapping[str, Any],
    cycle: LearningCycle | None = None,
    submission_ids: Iterable[int] | None = None,
) -> Snapshot:
    """The snapshot of a cycle (current accepted versions) or of an explicit list of ids."""
    if submission_ids is not None:
        pairs = check_explicit_ids(session, collaborative_id, submission_ids)
        measure_ids = sorted({measure for _, measure in pairs})
    elif cycle is not None:
        pairs = cycle_submission_ids(session, cycle)
        measure_ids = cycle_measure_ids(session, cycle.id)
    else:
        msg = "a snapshot needs a cycle or explicit submission ids"
        raise SnapshotError(msg)
    ids = [submission for submission, _ in pairs]
    by_measure: dict[int, list[int]] = {measure: [] for measure in measure_ids}
    for submission, measure in pairs:
        by_measure.setdefault(measure, []).append(submission)
    return Snapshot(
        tuple(ids),
        snapshot_hash(ids, settings),
        tuple(measure_ids),
        {measure: tuple(found) for measure, found in by_measure.items()},
    )
