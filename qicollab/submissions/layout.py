"""The columns a measure's submissions have, derived from its definition.

Templates, the PHI allow-list, the parsers' typing and the validator all read this one
description, so a template always uploads cleanly and a column the template does not offer is
never accepted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qicollab.measures.models import DataLevel, Measure, MeasureType
from qicollab.measures.spec import CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.members.models import Collaborative, DeidProfile, Member


class ColumnKind(enum.StrEnum):
    """How a column's text is typed and checked."""

    PERIOD = "period"  # YYYY-MM, a reporting month
    COUNT = "count"  # non-negative whole number
    NUMBER = "number"  # decimal number
    BINARY = "binary"  # 0 or 1
    CODE = "code"  # one of a fixed list of codes (kept as text: "01" stays "01")
    YEAR = "year"
    MONTH = "month"
    KEY = "key"  # an opaque case key
    TEXT = "text"  # free text (comment)


class ColumnRole(enum.StrEnum):
    """What a column means to the submission."""

    PERIOD = "period"
    NUMERATOR = "numerator"
    DENOMINATOR = "denominator"
    EXCLUSIONS = "exclusions"
    VALUE = "value"
    COMMENT = "comment"
    CASE_KEY = "case_key"
    EVENT_YEAR = "event_year"
    EVENT_MONTH = "event_month"
    COVARIATE = "covariate"
    OUTCOME = "outcome"


#: Case keys: short, opaque, safe in any file format.
CASE_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
COMMENT_MAX_CHARS = 500
FIRST_YEAR = 2000
LAST_YEAR = 2100


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a submission file."""

    name: str
    kind: ColumnKind
    role: ColumnRole
    label: str
    required: bool
    description: str = ""
    levels: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    example: str = ""

    @property
    def is_free_text(self) -> bool:
        """Text the officer types freely: swept for identifiers in full."""
        return self.kind in {ColumnKind.TEXT, ColumnKind.KEY}

    def allowed_values(self) -> str:
        """A short description of what the column accepts, for guidance and fixes."""
        if self.kind is ColumnKind.CODE:
            return "one of: " + ", ".join(self.levels)
        if self.kind is ColumnKind.BINARY:
            return "1 (yes) or 0 (no)"
        if self.kind is ColumnKind.PERIOD:
            return "a month written YYYY-MM, e.g. 2026-03"
        if self.kind is ColumnKind.YEAR:
            return "a four-digit year, e.g. 2026"
        if self.kind is ColumnKind.MONTH:
            return "a month number from 1 to 12"
        if self.kind is ColumnKind.COUNT:
            text = "a whole number, 0 or more"
        elif self.kind is ColumnKind.NUMBER:
            text = "a number"
        elif self.kind is ColumnKind.KEY:
            return "letters, digits, '-', '_', '.' or ':' (up to 64), meaningless outside your site"
        else:
            return f"free text, up to {COMMENT_MAX_CHARS} characters, no identifiers"
        minimum = None if self.kind is ColumnKind.COUNT and not self.minimum else self.minimum
        if minimum is not None and self.maximum is not None:
            text += f" from {_fmt(minimum)} to {_fmt(self.maximum)}"
        elif minimum is not None:
            text += f", at least {_fmt(minimum)}"
        elif self.maximum is not None:
            text += f", at most {_fmt(self.maximum)}"
        return text


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


@dataclass(frozen=True, slots=True)
class Layout:
    """The columns of one measure's submissions for one member."""

    measure_code: str
    measure_title: str
    level: DataLevel
    measure_type: MeasureType
    columns: tuple[Column, ...]
    #: Month of event allowed on patient rows (limited data set with a data use agreement).
    allows_month: bool
    deid_profile: DeidProfile
    family: OutcomeFamily | None = None
    #: How pages show the measure's value: the stored rate x ``multiplier``, then ``unit``
    #: ("%", "per 1,000 line-days"); messages about rates use the same scale.
    unit: str = ""
    multiplier: float = 1.0

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in template order."""
        return tuple(column.name for column in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        """Columns a file must have."""
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name: str) -> Column:
        """One column by name."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def by_role(self, role: ColumnRole) -> Column | None:
        """The column playing ``role`` (the first, for covariates)."""
        return next((column for column in self.columns if column.role is role), None)

    @property
    def is_patient(self) -> bool:
        """One row per case rather than per period."""
        return self.level is DataLevel.PATIENT


def month_allowed(collaborative: Collaborative, member: Member) -> bool:
    """Month of event is allowed only under a limited data set, with a data use agreement."""
    return (
        collaborative.deid_profile is DeidProfile.LIMITED_DATA_SET and member.has_data_use_agreement
    )


def layout_for(measure: Measure, *, collaborative: Collaborative, member: Member) -> Layout:
    """The submission columns of ``measure`` for ``member``."""
    allows_month = month_allowed(collaborative, member)
    if measure.level is DataLevel.PATIENT:
        spec = RiskModelSpec.from_json(measure.risk_model or {})
        columns = _patient_columns(spec, allows_month=allows_month)
        family: OutcomeFamily | None = spec.family
    else:
        columns = _aggregate_columns(measure)
        family = None
    return Layout(
        measure_code=measure.code,
        measure_title=measure.title,
        level=measure.level,
        measure_type=measure.measure_type,
        columns=columns,
        allows_month=allows_month,
        deid_profile=collaborative.deid_profile,
        family=family,
        unit=measure.unit or "",
        multiplier=measure.multiplier or 1.0,
    )


def _aggregate_columns(measure: Measure) -> tuple[Column, ...]:
    period = Column(
        "period",
        ColumnKind.PERIOD,
        ColumnRole.PERIOD,
        "Period (YYYY-MM)",
        required=True,
        description="The reporting month the counts refer to.",
        example="2026-01",
    )
    comment = Column(
        "comment",
        ColumnKind.TEXT,
        ColumnRole.COMMENT,
        "Comment",
        required=False,
        description="Optional context for the coordinators. Never patient details.",
        example="",
    )
    if measure.measure_type in {MeasureType.MEAN, MeasureType.TIME_BETWEEN_EVENTS}:
        return (
            period,
            Column(
                "value",
                ColumnKind.NUMBER,
                ColumnRole.VALUE,
                f"Value ({measure.unit})" if measure.unit else "Value",
                required=True,
                description=measure.numerator_definition,
                minimum=0.0,
                example="27.5",
            ),
            Column(
                "denominator",
                ColumnKind.COUNT,
                ColumnRole.DENOMINATOR,
                "Cases",
                required=True,
                description=measure.denominator_definition,
                minimum=0.0,
                example="1450",
            ),
            comment,
        )
    # Proportions count cases; rates and ratios may have fractional exposure (line-days,
    # expected counts), so their denominator is a number.
    denominator_kind = (
        ColumnKind.COUNT if measure.measure_type is MeasureType.PROPORTION else ColumnKind.NUMBER
    )
    return (
        period,
        Column(
            "numerator",
            ColumnKind.COUNT,
            ColumnRole.NUMERATOR,
            "Numerator",
            required=True,
            description=measure.numerator_definition,
            minimum=0.0,
            example="45",
        ),
        Column(
            "denominator",
            denominator_kind,
            ColumnRole.DENOMINATOR,
            "Denominator",
            required=True,
            description=measure.denominator_definition,
            minimum=0.0,
            example="50",
        ),
        Column(
            "exclusions",
            ColumnKind.COUNT,
            ColumnRole.EXCLUSIONS,
            "Exclusions",
            required=False,
            description=measure.exclusion_definition
            or "Cases excluded from the denominator, if you track them.",
            minimum=0.0,
            example="",
        ),
        comment,
    )


def _patient_columns(spec: RiskModelSpec, *, allows_month: bool) -> tuple[Column, ...]:
    columns = [
        Column(
            "case_key",
            ColumnKind.KEY,
            ColumnRole.CASE_KEY,
            "Case key",
            required=True,
            description=(
                "An opaque key you can trace back inside your own organization only: not a "
                "record number, name or date. Random letters and digits are best (e.g. 7QF2K9)."
            ),
            example="7QF2K9",
        ),
        Column(
            "event_year",
            ColumnKind.YEAR,
            ColumnRole.EVENT_YEAR,
            "Year of event",
            required=True,
            description="The calendar year of the operation or admission.",
            minimum=FIRST_YEAR,
            maximum=LAST_YEAR,
            example="2026",
        ),
    ]
    if allows_month:
        columns.append(
            Column(
                "event_month",
                ColumnKind.MONTH,
                ColumnRole.EVENT_MONTH,
                "Month of event",
                required=False,
                description="Month number (1-12), allowed under your data use agreement.",
                minimum=1,
                maximum=12,
                example="3",
            )
        )
    for covariate in spec.covariates:
        if covariate.type is CovariateType.CATEGORICAL:
            kind = ColumnKind.CODE
            example = covariate.reference or covariate.levels[0]
        elif covariate.type is CovariateType.BINARY:
            kind = ColumnKind.BINARY
            example = "0"
        else:
            kind = ColumnKind.NUMBER
            example = _fmt(covariate.minimum) if covariate.minimum is not None else "1"
        columns.append(
            Column(
                covariate.name,
                kind,
                ColumnRole.COVARIATE,
                covariate.label or covariate.name,
                required=True,
                description=f"Risk factor: {covariate.label or covariate.name}.",
                levels=covariate.levels,
                minimum=covariate.minimum,
                maximum=covariate.maximum,
                example=example,
            )
        )
    if spec.family is OutcomeFamily.BINOMIAL:
        outcome_kind, example = ColumnKind.BINARY, "0"
    elif spec.family in {OutcomeFamily.POISSON, OutcomeFamily.NEGBIN}:
        outcome_kind, example = ColumnKind.COUNT, "4"
    else:
        outcome_kind, example = ColumnKind.NUMBER, "1.5"
    columns.append(
        Column(
            spec.outcome,
            outcome_kind,
            ColumnRole.OUTCOME,
            spec.outcome_label or spec.outcome,
            required=True,
            description=f"Outcome: {spec.outcome_label or spec.outcome}.",
            minimum=0.0 if outcome_kind is ColumnKind.COUNT else None,
            example=example,
        )
    )
    return tuple(columns)
