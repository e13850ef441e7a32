"""Context builders for the printed reports: what each document says, for whom.

* the **member benchmark report** (one member, peers blinded and suppressed),
* the **collaborative report** (coordinators, identified),
* the **blinded collaborative summary** (every member may download it: no member is named).

The builders read through :mod:`.results` and build through :mod:`.sections` and
:mod:`.overview`, the same code as the portal pages, so the PDF and the page agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qicollab.improvement.practice import cached_best_practice
from qicollab.improvement.reporting import collaborative_improvement, member_improvement
from qicollab.reporting.models import ReportKind
from qicollab.reporting.overview import build_overview
from qicollab.reporting.privacy import Audience
from qicollab.reporting.results import RunData, load_member
from qicollab.reporting.sections import (
    calibration_table,
    calibration_text,
    data_appendix,
    executive_summary,
    lock_text,
    member_sections,
    methods_text,
    model_summaries,
    period_text,
    today,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

TEMPLATES: dict[ReportKind, str] = {
    ReportKind.MEMBER: "member.jinja2",
    ReportKind.COLLABORATIVE: "collaborative.jinja2",
    ReportKind.BLINDED_SUMMARY: "collaborative.jinja2",
}


@dataclass(frozen=True, slots=True)
class ReportSpec:
    """One document of a run: its kind and, for member reports, the member."""

    kind: ReportKind
    member_id: int | None = None

    @property
    def filename(self) -> str:
        """The file name under ``reports/run-<id>/`` (ids, never names: names identify)."""
        if self.kind is ReportKind.MEMBER:
            return f"member-{self.member_id}.pdf"
        return f"{self.kind.value}.pdf"


def _common(run: RunData) -> dict[str, Any]:
    return {
        "run": run,
        "lock": lock_text(run),
        "periods": period_text(run),
        "generated": today(),
        "methods": methods_text(run),
        "models": model_summaries(run),
        "calibration": calibration_table(run),
        "calibration_text": calibration_text(),
    }


def member_report_context(session: Session, run: RunData, member_id: int) -> dict[str, Any]:
    """The member benchmark report's context."""
    member = load_member(session, run, member_id)
    audience = Audience.member(member_id, run.run.min_cell_size)
    sections = member_sections(run, member, audience)
    name = member.member.name
    return {
        **_common(run),
        "title": f"Benchmark report: {name}, run {run.run.id}",
        "description": f"{run.run.collaborative_name} benchmark report for {name}",
        "running_title": f"{run.run.collaborative_name} · {run.run.cycle_title}",
        "running_subject": name,
        "member": member.member,
        "sections": sections,
        "summary": executive_summary(sections),
        "data_rows": data_appendix(run, member),
        "improvement": member_improvement(session, run.run.collaborative_id, member_id),
        "practice": cached_best_practice(session, run),
    }


def collaborative_report_context(
    session: Session,
    run: RunData,
    *,
    blinded: bool,
) -> dict[str, Any]:
    """The collaborative report (identified) or the blinded summary every member may read."""
    audience = (
        Audience.every_member(run.run.min_cell_size)
        if blinded
        else Audience.coordinator(run.run.min_cell_size)
    )
    overview = build_overview(session, run, audience, charts=True)
    kind = "Blinded collaborative summary" if blinded else "Collaborative report"
    return {
        **_common(run),
        "title": f"{kind}: {run.run.collaborative_name}, run {run.run.id}",
        "description": f"{kind} of {run.run.collaborative_name}",
        "running_title": f"{run.run.collaborative_name} · {run.run.cycle_title}",
        "running_subject": kind if blinded else "Identified: coordinators only",
        "blinded": blinded,
        "heading": kind,
        "overview": overview,
        "show_matrix": not blinded,
        "matrix_rows": overview.rows
        if len(overview.rows) <= 200
        else [r for r in overview.rows if r.flagged],
        "matrix_trimmed": len(overview.rows) > 200,
        "improvement": collaborative_improvement(session, run.run.collaborative_id),
        "practice": cached_best_practice(session, run),
    }


def report_context(
    session: Session,
    run: RunData,
    spec: ReportSpec,
) -> dict[str, Any]:
    """The context of any report of a run."""
    if spec.kind is ReportKind.MEMBER:
        assert spec.member_id is not None
        return member_report_context(session, run, spec.member_id)
    return collaborative_report_context(
        session, run, blinded=spec.kind is ReportKind.BLINDED_SUMMARY
    )
