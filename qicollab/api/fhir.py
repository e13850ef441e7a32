"""FHIR R4 ``MeasureReport`` (summary) import: parse, check, and map to one aggregate row.

Parsing uses fhir.resources' R4B models. R4B is the technical correction of R4 and its
MeasureReport is wire-compatible with R4's (same elements, cardinalities and value sets), so an
R4 summary report parses unchanged; the R4 package of fhir.resources 8 is not used because the
R4B one is what the library maintains for the 4.x line.

The library checks structure and datatypes only. Our own checks come after it: status
``complete``, type ``summary``, a measure canonical that names one of our measure codes, a
reporter that names a member, a period that is one reporting month, and population counts
(``numerator``, ``denominator``, ``denominator-exclusion``) that are non-negative integers with
numerator <= denominator. Every problem becomes an ``OperationOutcome`` issue whose expression
is the FHIRPath of the offending element, so a sender's developer can find it.

Nothing of the report is stored but the counts: narrative, contained resources and extensions
are ignored, and a report that points at a patient is refused (the API takes no PHI).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic
from fhir.resources.R4B.measurereport import MeasureReport

from qicollab.submissions.identifiers import screen_text, scrub

MEASURE_POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
MEMBER_IDENTIFIER_SYSTEM = "urn:qicollab:member"
FHIR_JSON = "application/fhir+json"
#: Population codes we read, and the row column each fills.
POPULATION_COLUMNS = {
    "numerator": "numerator",
    "denominator": "denominator",
    "denominator-exclusion": "exclusions",
}
#: Codes a sender may include that carry nothing we store.
IGNORED_POPULATIONS = frozenset({"initial-population"})
#: Resource types that would identify a person if a report carried or pointed at them.
PERSON_TYPES = frozenset({"Patient", "Person", "RelatedPerson"})
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome issue."""

    severity: str  # fatal | error | warning | information
    code: str  # invalid | required | value | business-rule | forbidden | not-found | ...
    text: str
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The issue as FHIR JSON."""
        text = scrub(self.text)  # never quote back a value the screen would refuse
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "details": {"text": text},
            "diagnostics": text,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """An OperationOutcome resource carrying ``issues``."""
    found = [issue.to_json() for issue in issues]
    if not found:
        found = [Issue("information", "informational", "nothing to report").to_json()]
    return {"resourceType": "OperationOutcome", "issue": found}


class FhirImportError(Exception):
    """The report cannot be imported; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, issues: Sequence[Issue]) -> None:
        super().__init__("; ".join(issue.text for issue in issues))
        self.status = status
        self.issues = tuple(issues)


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """What a valid summary MeasureReport says, before it meets our database."""

    measure_code: str
    member_code: str
    period_start: dt.date
    period_end: dt.date
    counts: dict[str, int]
    measure_score: float | None
    #: Row column -> FHIRPath of the element it came from (to place later problems).
    paths: dict[str, str] = field(default_factory=dict)

    def row(self, period_label: str, *, mean: bool) -> dict[str, object]:
        """The aggregate row the submission pipeline checks and stores."""
        row: dict[str, object] = {"period": period_label}
        if mean:
            row["value"] = self.measure_score
            row["denominator"] = self.counts.get("denominator")
        else:
            row["numerator"] = self.counts.get("numerator")
            row["denominator"] = self.counts.get("denominator")
            if "exclusions" in self.counts:
                row["exclusions"] = self.counts["exclusions"]
        return row


def fhir_path(location: Sequence[Any]) -> str:
    """A pydantic error location as a FHIRPath expression (``MeasureReport.group[0].x``)."""
    path = "MeasureReport"
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = str(part).removesuffix("__ext")
            if name in {"MeasureReport", "__root__"}:
                continue
            path += f".{name}"
    return path


#: Elements that carry narrative or point at individuals; a summary report needs none of them.
_IDENTIFYING_ELEMENTS = {
    "text": "narrative text can name or describe patients",
    "contained": "contained resources can be patients or their records",
    "subject": "a report about one subject is individual-level data",
    "subjectResults": "lists of the subjects counted identify them",
    "evaluatedResource": "references to the resources evaluated point at patient records",
}


def _identifying_elements(node: Any, path: str) -> list[tuple[str, str]]:
    """(FHIRPath, reason) for every narrative or identifying element under ``node``.

    Refused, not trimmed: the sender must know what it sent. Free-text strings elsewhere
    (``display``, notes in extensions) go through the de-identification screen.
    """
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in _IDENTIFYING_ELEMENTS and value not in (None, [], {}):
                found.append((where, _IDENTIFYING_ELEMENTS[key]))
            elif key in {"display", "valueString", "valueMarkdown", "description"} and (
                isinstance(value, str) and screen_text(value, dates=False)
            ):
                found.append((where, "the text looks like it carries an identifier"))
            else:
                found += _identifying_elements(value, where)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _identifying_elements(value, f"{path}[{index}]")
    return found


def _structure(document: Any) -> MeasureReport:
    if not isinstance(document, dict):
        raise FhirImportError(
            400, [Issue("error", "structure", "the body must be a JSON object", ("MeasureReport",))]
        )
    kind = document.get("resourceType")
    if kind != "MeasureReport":
        raise FhirImportError(
            400,
            [
                Issue(
                    "error",
                    "not-supported",
                    f"resourceType must be MeasureReport, not {str(kind)[:40]!r}",
                    ("resourceType",),
                )
            ],
        )
    identifying = _identifying_elements(document, "MeasureReport")
    if identifying:
        raise FhirImportError(
            422,
            [
                Issue(
                    "error",
                    "security",
                    f"{path} is not accepted: {why}; the collaborative takes summary counts "
                    "only. Remove the element and send the report again.",
                    (path,),
                )
                for path, why in identifying[:50]
            ],
        )
    try:
        return MeasureReport.model_validate(document)
    except pydantic.ValidationError as error:
        issues = [
            Issue(
                "error",
                "required" if problem["type"] == "missing" else "structure",
                f"{problem['msg']}",
                (fhir_path(problem["loc"]),),
            )
            for problem in error.errors(include_url=False, include_input=False)[:50]
        ]
        # JSON the document accepts but FHIR R4 does not: unprocessable, like any other
        # well-formed request that fails the measure's rules.
        raise FhirImportError(422, issues) from None


def _measure_code(report: MeasureReport, issues: list[Issue]) -> str:
    canonical = (report.measure or "").split("|", 1)[0].rstrip("/")
    code = canonical.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    if not _CODE.match(code):
        issues.append(
            Issue(
                "error",
                "value",
                "measure must be a canonical URL ending in a measure code, e.g. "
                "https://example.org/fhir/Measure/HH",
                ("MeasureReport.measure",),
            )
        )
        return ""
    return code


def _member_code(report: MeasureReport, issues: list[Issue]) -> str:
    reporter = report.reporter
    if reporter is None:
        issues.append(
            Issue(
                "error",
                "required",
                f"reporter is required: the member, as identifier (system "
                f"{MEMBER_IDENTIFIER_SYSTEM}) or Organization/CODE",
                ("MeasureReport.reporter",),
            )
        )
        return ""
    if reporter.identifier is not None and reporter.identifier.value:
        system = reporter.identifier.system
        if system not in (None, MEMBER_IDENTIFIER_SYSTEM):
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"reporter.identifier.system must be {MEMBER_IDENTIFIER_SYSTEM}",
                    ("MeasureReport.reporter.identifier.system",),
                )
            )
            return ""
        return reporter.identifier.value.strip()
    reference = (reporter.reference or "").strip()
    kind, _, code = reference.rpartition("/")
    if kind.rsplit("/", 1)[-1] == "Organization" and _CODE.match(code):
        return code
    issues.append(
        Issue(
            "error",
            "value",
            "reporter must name the member: identifier.value, or reference Organization/CODE",
            ("MeasureReport.reporter",),
        )
    )
    return ""


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def _period(report: MeasureReport, issues: list[Issue]) -> tuple[dt.date, dt.date] | None:
    period = report.period
    start = _as_date(period.start) if period else None
    end = _as_date(period.end) if period else None
    if start is None or end is None:
        issues.append(
            Issue(
                "error",
                "required",
                "period.start and period.end are required (a full reporting month)",
                ("MeasureReport.period",),
            )
        )
        return None
    return start, end


def _no_people(report: MeasureReport, issues: list[Issue]) -> None:
    subject = (report.subject.reference or "") if report.subject else ""
    if subject.split("/")[0] in PERSON_TYPES:
        issues.append(
            Issue(
                "error",
                "security",
                "a summary report must not point at a person; send counts only",
                ("MeasureReport.subject",),
            )
        )
    for index, resource in enumerate(report.contained or []):
        if getattr(resource, "get_resource_type", lambda: "")() in PERSON_TYPES:
            issues.append(
                Issue(
                    "error",
                    "security",
                    "contained person resources are refused: the collaborative takes no "
                    "identifiable data",
                    (f"MeasureReport.contained[{index}]",),
                )
            )


def _population_code(population: Any) -> str | None:
    codings = population.code.coding if population.code and population.code.coding else []
    for coding in codings:
        if coding.system in (None, MEASURE_POPULATION_SYSTEM) and coding.code:
            return coding.code
    return None


def _populations(
    report: MeasureReport, issues: list[Issue], paths: dict[str, str]
) -> tuple[dict[str, int], float | None]:
    groups = report.group or []
    if len(groups) != 1:
        issues.append(
            Issue(
                "error",
                "value" if groups else "required",
                "exactly one group is required (one measure, one set of counts)",
                ("MeasureReport.group",),
            )
        )
        return {}, None
    group = groups[0]
    counts: dict[str, int] = {}
    for index, population in enumerate(group.population or []):
        where = f"MeasureReport.group[0].population[{index}]"
        code = _population_code(population)
        if code in IGNORED_POPULATIONS:
            continue
        column = POPULATION_COLUMNS.get(code or "")
        if column is None:
            issues.append(
                Issue(
                    "error",
                    "code-invalid",
                    f"population code {code!r} is not one of numerator, denominator, "
                    f"denominator-exclusion ({MEASURE_POPULATION_SYSTEM})",
                    (f"{where}.code",),
                )
            )
            continue
        if column in counts:
            issues.append(Issue("error", "duplicate", f"{code} appears twice", (f"{where}.code",)))
            continue
        count = population.count
        if count is None:
            issues.append(Issue("error", "required", f"{code} needs a count", (f"{where}.count",)))
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            issues.append(
                Issue(
                    "error",
                    "value",
                    f"the {code} count must be a whole number, 0 or more",
                    (f"{where}.count",),
                )
            )
            continue
        counts[column] = count
        paths[column] = f"{where}.count"
    score = None
    if group.measureScore is not None and group.measureScore.value is not None:
        score = float(group.measureScore.value)
        paths["value"] = "MeasureReport.group[0].measureScore.value"
    return counts, score


def parse_measure_report(document: Any) -> ParsedReport:
    """Parse and check a summary MeasureReport; raise :class:`FhirImportError` with issues."""
    report = _structure(document)
    issues: list[Issue] = []
    if report.status != "complete":
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"status must be complete (this report is {report.status}); send it when final",
                ("MeasureReport.status",),
            )
        )
    if report.type != "summary":
        issues.append(
            Issue(
                "error",
                "not-supported",
                f"type must be summary, not {report.type}: only aggregate counts are imported",
                ("MeasureReport.type",),
            )
        )
    _no_people(report, issues)
    measure_code = _measure_code(report, issues)
    member_code = _member_code(report, issues)
    period = _period(report, issues)
    paths = {"period": "MeasureReport.period", "measure": "MeasureReport.measure"}
    counts, score = _populations(report, issues, paths)
    if issues or period is None:
        raise FhirImportError(422, issues)
    return ParsedReport(
        measure_code=measure_code,
        member_code=member_code,
        period_start=period[0],
        period_end=period[1],
        counts=counts,
        measure_score=score,
        paths=paths,
    )


def check_counts(parsed: ParsedReport, *, mean: bool, ordered: bool) -> list[Issue]:
    """Which counts the measure needs, and numerator <= denominator where that holds."""
    issues: list[Issue] = []
    group = "MeasureReport.group[0]"
    needed = ("denominator",) if mean else ("numerator", "denominator")
    for column in needed:
        if column not in parsed.counts:
            code = "numerator" if column == "numerator" else "denominator"
            issues.append(
                Issue(
                    "error",
                    "required",
                    f"a {code} population is required",
                    (f"{group}.population",),
                )
            )
    if mean and parsed.measure_score is None:
        issues.append(
            Issue(
                "error",
                "required",
                "a mean measure needs the mean in measureScore.value",
                (f"{group}.measureScore",),
            )
        )
    numerator, denominator = parsed.counts.get("numerator"), parsed.counts.get("denominator")
    if ordered and numerator is not None and denominator is not None and numerator > denominator:
        issues.append(
            Issue(
                "error",
                "business-rule",
                f"the numerator ({numerator}) is larger than the denominator ({denominator})",
                (parsed.paths["numerator"],),
            )
        )
    return issues
