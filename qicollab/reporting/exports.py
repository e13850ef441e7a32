"""Results as files: CSV and XLSX tables, and FHIR R4 ``MeasureReport`` resources.

Tables are built for an audience, exactly like the pages: for a member, its own rows are
identified and every peer row is blinded (code only) and passed through the small-cell rule
(suppressed cells say "suppressed"); coordinators get every member identified. Every text cell
goes through :func:`qicollab.exports.escape_formula`, so a member or measure name that starts
with ``=`` reaches a spreadsheet as text, never as a formula.

FHIR: one summary ``MeasureReport`` per measure of the member's own results (nothing about
peers), built and validated with ``fhir.resources`` (R4B models, wire-compatible with R4), in a
``collection`` Bundle.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from typing import TYPE_CHECKING, Any

from qicollab.exports import csv_bytes, escape_formula, escape_row
from qicollab.reporting import formatting
from qicollab.reporting.privacy import Audience
from qicollab.reporting.sections import benchmark_standing

if TYPE_CHECKING:
    from qicollab.reporting.results import MeasureView, PeerGroupView, Result, RunData

HEADER = (
    "run",
    "measure",
    "measure_title",
    "member",
    "own",
    "value",
    "unit",
    "ci95_low",
    "ci95_high",
    "observed",
    "denominator",
    "expected",
    "observed_expected",
    "status",
    "status_nsqip",
    "decile",
    "benchmark",
    "distance_to_benchmark",
    "reaches_benchmark",
    "suppressed",
    "peer_figures_withheld",
)
SUPPRESSED = formatting.SUPPRESSED


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _row(  # noqa: PLR0917 - private: one table row
    run: RunData,
    measure: MeasureView,
    result: Result,
    audience: Audience,
    abc: float | None,
    group: PeerGroupView | None,
) -> list[object]:
    member = run.members[result.member_id]
    hidden = audience.hides(result.member_id, run.suppressed(measure))
    summary = run.summary(measure.id)
    words = formatting.status(result.outlier_status)

    def shown(value: float | None, scale: float = measure.multiplier) -> object:
        if hidden:
            return SUPPRESSED
        return _round(None if value is None else value * scale)

    # The run's judgement against the benchmark shown beside it (none when withheld).
    standing = benchmark_standing(run, measure.id, result, group)
    reaches = None if standing.reaches is None else ("yes" if standing.reaches else "no")
    return [
        run.run.id,
        measure.code,
        measure.title,
        audience.label(member),
        "yes" if audience.is_own(result.member_id) else "no",
        shown(result.value),
        measure.unit,
        shown(result.ci95[0]),
        shown(result.ci95[1]),
        shown(result.observed, 1.0),
        shown(result.denominator, 1.0),
        shown(result.expected, 1.0),
        shown(result.oe(), 1.0),
        words.plain,
        words.nsqip,
        result.decile,
        _round(abc * measure.multiplier) if abc is not None else None,
        shown(standing.distance),
        SUPPRESSED if hidden and reaches is not None else reaches,
        "yes" if hidden else "no",
        summary.withheld if summary is not None else None,
    ]


def results_table(
    run: RunData, audience: Audience, *, group: PeerGroupView | None = None
) -> tuple[tuple[str, ...], list[list[object]]]:
    """Every member's whole-cycle result of every measure, for this audience."""
    rows: list[list[object]] = []
    for measure in run.measures:
        summary = run.summary(measure.id, group.id if group else None) or run.summary(measure.id)
        abc = summary.abc if summary else None
        results = run.results_for(measure.id, group.member_ids if group else None)
        results.sort(
            key=lambda r: (
                not audience.is_own(r.member_id),
                audience.label(run.members[r.member_id]),
            )
        )
        rows += [_row(run, measure, result, audience, abc, group) for result in results]
    return HEADER, rows


def to_csv(header: tuple[str, ...], rows: list[list[object]]) -> bytes:
    """UTF-8 CSV with every text cell formula-escaped."""
    return csv_bytes(header, rows)


def to_xlsx(header: tuple[str, ...], rows: list[list[object]], *, title: str) -> bytes:
    """An XLSX workbook (one sheet) with every text cell formula-escaped."""
    from openpyxl import Workbook  # noqa: PLC0415 - only exports need it

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=escape_title(title))
    sheet.append(escape_row(header))
    for row in rows:
        sheet.append([escape_formula(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def escape_title(title: str) -> str:
    """A worksheet title Excel accepts (31 characters, none of ``[]:*?/\\``)."""
    cleaned = "".join("_" if c in "[]:*?/\\" else c for c in title).strip("'")
    return cleaned[:31] or "results"


# --- FHIR ---------------------------------------------------------------------------------------

POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
IMPROVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
CI_EXTENSION = "https://qicollab.org/fhir/StructureDefinition/interval-95"
STATUS_EXTENSION = "https://qicollab.org/fhir/StructureDefinition/outlier-status"
WITHHELD_EXTENSION = "https://qicollab.org/fhir/StructureDefinition/peer-figures-withheld"


def _population(code: str, count: float | None) -> dict[str, Any] | None:
    if count is None or count != int(count) or count < 0:
        return None
    return {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}, "count": int(count)}


def measure_report(
    run: RunData, measure: MeasureView, result: Result, member_code: str, member_name: str
) -> dict[str, Any]:
    """One summary MeasureReport (as a validated JSON dict) of a member's result."""
    from fhir.resources.R4B.measurereport import MeasureReport  # noqa: PLC0415

    group: dict[str, Any] = {
        "code": {
            "coding": [{"system": "urn:qicollab:measure", "code": measure.code}],
            "text": measure.title,
        },
        "population": [
            p
            for p in (
                _population("denominator", result.denominator),
                _population("numerator", result.observed),
            )
            if p is not None
        ],
    }
    value = measure.scaled(result.value)
    if value is not None:
        group["measureScore"] = {"value": round(value, 6), "unit": measure.unit or "1"}
    low, high = result.ci95
    extensions: list[dict[str, Any]] = []
    if low is not None and high is not None:
        extensions.append(
            {
                "url": CI_EXTENSION,
                "valueRange": {
                    "low": {"value": round(low * measure.multiplier, 6), "unit": measure.unit},
                    "high": {"value": round(high * measure.multiplier, 6), "unit": measure.unit},
                },
            }
        )
    if result.outlier_status:
        extensions.append({"url": STATUS_EXTENSION, "valueCode": result.outlier_status})
    summary = run.summary(measure.id)
    if summary is not None and summary.withheld:
        extensions.append({"url": WITHHELD_EXTENSION, "valueString": summary.withheld})
    if extensions:
        group["extension"] = extensions
    first, last = run.run.first_period, run.run.last_period
    period = {
        "start": (first or dt.date(1900, 1, 1)).isoformat(),
        "end": (last or dt.datetime.now(dt.UTC).date()).isoformat(),
    }
    resource = MeasureReport.model_validate(
        {
            "resourceType": "MeasureReport",
            "id": re.sub(r"[^A-Za-z0-9.-]", "-", f"run-{run.run.id}-{measure.code}-{member_code}")[
                :64
            ],
            "status": "complete",
            "type": "summary",
            "measure": f"urn:qicollab:measure:{measure.code}",
            "date": (run.run.finished_at or dt.datetime.now(dt.UTC)).isoformat(),
            "period": period,
            "reporter": {
                "identifier": {"system": "urn:qicollab:member", "value": member_code},
                "display": member_name,
            },
            "improvementNotation": {
                "coding": [{"system": IMPROVEMENT_SYSTEM, "code": measure.direction}]
            },
            "group": [group],
        }
    )
    return resource.model_dump(mode="json", exclude_none=True)


def measure_report_bundle(run: RunData, member_id: int) -> dict[str, Any]:
    """A FHIR collection Bundle of the member's MeasureReports (validated)."""
    from fhir.resources.R4B.bundle import Bundle  # noqa: PLC0415

    member = run.members[member_id]
    entries = []
    for measure in run.measures:
        result = run.results.get((member_id, measure.id))
        if result is None:
            continue
        report = measure_report(run, measure, result, member.code, member.name)
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": report})
    bundle = Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
            "entry": entries,
        }
    )
    return bundle.model_dump(mode="json", exclude_none=True)
