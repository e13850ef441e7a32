"""The stored-results contract: what a benchmark run writes and every reader reads.

Each JSON payload a run stores (a member's whole-cycle result, a member's period result, a
collaborative or peer-group summary, a control chart, an RA-CUSUM, a VLAD) is one frozen class
here. The run builds these objects and stores ``to_json()``; pages, PDFs, exports and FHIR read
them back with ``from_json()``. Unknown keys are refused, so a writer and a reader can no longer
drift apart silently (a reader asking for a key the writer never wrote was how member funnels
came to draw limits other than the ones that decided the status).

Every payload carries ``version``. A payload written by another version is refused with
:class:`StalePayloadError` ("recompute this run"): stored runs are never misread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

from qicollab.stats.cusum import CusumLimit
from qicollab.stats.spc_results import ControlChart

#: Bump whenever a payload class changes shape or meaning; runs stored under another version
#: are refused until recomputed.
PAYLOAD_VERSION = 4

#: Funnel and interval levels as stored keys.
LEVEL_KEYS = ("95", "99.8")


class StalePayloadError(ValueError):
    """A stored payload was written by another payload version (or is malformed): the run has
    to be recomputed before it can be shown."""


def _finite(value: object) -> float | None:
    """Numbers as stored: numpy scalars become floats, NaN and infinity become None."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _integer(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _floats(values: object) -> object:
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, Sequence) and not isinstance(values, str):
        return [_finite(v) for v in values]
    return values


#: A finite number or None (NaN, infinity and missing all store as null).
Number = Annotated[float | None, BeforeValidator(_finite)]
Integer = Annotated[int, BeforeValidator(_integer)]
Numbers = Annotated[list[Number], BeforeValidator(_floats)]
#: (lower, upper).
Interval = tuple[Number, Number]
#: One point of a limit curve: (x, lower, upper), on the stored scales.
LimitPoint = tuple[Number, Number, Number]


def _control_chart(value: object) -> ControlChart:
    return value if isinstance(value, ControlChart) else ControlChart.from_dict(value)  # type: ignore[arg-type]


def _cusum_limit(value: object) -> CusumLimit:
    return value if isinstance(value, CusumLimit) else CusumLimit.from_dict(value)  # type: ignore[arg-type]


#: The SPC engine's own frozen chart, stored as its JSON.
StoredControlChart = Annotated[
    ControlChart,
    BeforeValidator(_control_chart),
    PlainSerializer(lambda chart: chart.to_dict(), return_type=dict),
]
StoredCusumLimit = Annotated[
    CusumLimit,
    BeforeValidator(_cusum_limit),
    PlainSerializer(lambda limit: limit.to_dict(), return_type=dict),
]


class Payload(BaseModel):
    """Frozen, closed, versioned; ``to_json`` / ``from_json`` are the only way in and out."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (what the run stores)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self:
        """Read a stored payload; another version, or a shape this version does not know, is a
        :class:`StalePayloadError` naming the class."""
        data = dict(data or {})
        version = data.get("version")
        if version != PAYLOAD_VERSION:
            msg = (
                f"stored {cls.__name__} was written by payload version {version}, this release "
                f"reads version {PAYLOAD_VERSION}: recompute this run"
            )
            raise StalePayloadError(msg)
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            msg = f"stored {cls.__name__} does not match this release: recompute this run ({error})"
            raise StalePayloadError(msg) from error


class Versioned(Payload):
    """A top-level stored payload."""

    version: Literal[4] = PAYLOAD_VERSION


# --- summaries ----------------------------------------------------------------------------------


class FunnelPayload(Payload):
    """A funnel as the run judged members against it.

    ``decided_by`` names the limits that set every status ("adjusted" when the funnel is
    overdispersed and the adjustment widened the limits); charts draw those, and the other set
    lighter. Curves are ``(x, lower, upper)`` per level on the stored scales (``scale``: "oe"
    for patient-level measures, else the measure's value; ``x``: expected events or the
    denominator).
    """

    method: str
    transform: str
    scale: Literal["oe", "value"]
    x: Literal["expected", "denominator"]
    target: Number
    phi: Number
    tau2: Number
    overdispersed: bool
    adjusted: bool
    note: str
    units_used_for_dispersion: Integer
    unadjusted_limits: dict[str, list[LimitPoint]]
    adjusted_limits: dict[str, list[LimitPoint]]

    @property
    def decided_by(self) -> Literal["adjusted", "unadjusted"]:
        """Which limits the statuses came from."""
        return "adjusted" if self.adjusted else "unadjusted"

    @property
    def limits(self) -> dict[str, list[LimitPoint]]:
        """The curves that decided the statuses."""
        return self.adjusted_limits if self.adjusted else self.unadjusted_limits

    @property
    def other_limits(self) -> dict[str, list[LimitPoint]]:
        """The curves shown lighter beside them (unadjusted when adjusted), or none."""
        return self.unadjusted_limits if self.adjusted else {}

    def overdispersion_note(self) -> str:
        """What the limits are, in words, for the chart and the methods text."""
        if self.adjusted:
            phi = f"phi = {self.phi:.2f}" if self.phi is not None else "overdispersed"
            return (
                f"Limits adjusted for overdispersion ({self.method}, {phi}); these decided "
                "every status. Unadjusted limits are drawn lighter."
            )
        if self.phi is not None:
            return f"No overdispersion adjustment ({self.method}, phi = {self.phi:.2f})."
        return f"Limits without overdispersion adjustment ({self.method})."


class Distribution(Payload):
    """The members' values (each member once): :func:`qicollab.stats.peer.summarise`."""

    n: Integer
    mean: Number = None
    median: Number = None
    q1: Number = None
    q3: Number = None
    min: Number = None
    max: Number = None
    deciles: Numbers = []

    def quantiles(self) -> dict[str, float]:
        """p10..p90 (deciles) with p25/p50/p75, the keys pages read."""
        if not self.n:
            return {}
        out = {
            f"p{10 * (i + 1)}": value for i, value in enumerate(self.deciles) if value is not None
        }
        for name, value in (("p25", self.q1), ("p50", self.median), ("p75", self.q3)):
            if value is not None:
                out[name] = value
        return out


class AbcPayload(Payload):
    """The Achievable Benchmark of Care and the members that set it."""

    value: Number
    method: str
    fraction: float
    members: Integer
    direction: str
    member_ids: list[Integer] = []


class ShrinkagePayload(Payload):
    """Which shrinkage was applied, its fitted parameters and to what."""

    method: str
    params: dict[str, Number] = {}
    note: str | None = None
    applied_to: str | None = None

    @classmethod
    def of(cls, method: str, params: Mapping[str, Any], applied_to: str | None = None) -> Self:
        """From a fit's parameters, its words (``note``) kept apart from its numbers."""
        numbers = {key: value for key, value in params.items() if key != "note"}
        note = params.get("note")
        return cls(
            method=method,
            params=numbers,
            note=str(note) if note is not None else None,
            applied_to=applied_to,
        )


class ModelInfo(Payload):
    """The risk model behind a patient-level measure's expected values."""

    family: str
    c_statistic: Number = None


class YearValue(Payload):
    """The scope's pooled value in one calendar year (:func:`qicollab.stats.pooling.pool`:
    sum O / sum E, sum x / sum n, or the weighted mean), on the stored value scale."""

    year: Integer
    value: Number
    #: 95% interval (None for means and for outcomes that are not event counts).
    ci95: Interval | None = None
    members: Integer


class SummaryPayload(Versioned):
    """A collaborative or peer-group summary of a measure.

    ``withheld`` says why peer figures (distribution, quantiles, ABC and its members, the
    funnel) are not given: fewer than ``min_contributors`` members contributed. Then those
    fields are None and every reader shows the reason instead.
    """

    measure: str
    measure_type: str
    level: str
    direction: str
    multiplier: float
    unit: str
    target: Number
    minimum_volume: Integer
    scope_code: str | None = None
    computed: bool = True
    reason: str | None = None
    note: str | None = None
    contributors: Integer = 0
    min_contributors: Integer = 0
    withheld: str | None = None
    funnel: FunnelPayload | None = None
    funnel_note: str | None = None
    distribution: Distribution | None = None
    distribution_shrunk: Distribution | None = None
    abc: AbcPayload | None = None
    #: Members whose value reaches ``abc`` (None when withheld).
    at_benchmark: Integer | None = None
    #: The collaborative's pooled value per calendar year, oldest first (none when withheld).
    years: list[YearValue] = []
    shrinkage: ShrinkagePayload | None = None
    overall: Number = None
    model: ModelInfo | None = None
    observed_total: Number = None
    expected_total: Number = None
    numerator_total: Number = None

    def quantiles(self) -> dict[str, float]:
        """Stored quantiles keyed p10..p90 (none when withheld)."""
        return self.distribution.quantiles() if self.distribution is not None else {}


# --- member results -----------------------------------------------------------------------------


class StatusPair(Payload):
    """Direction-aware status at the warning (95%) and alarm (99.8%) limits."""

    warning: str | None = None
    alarm: str | None = None


class BenchmarkStanding(Payload):
    """A member's value against a benchmark (ABC), judged by the run
    (:func:`qicollab.stats.achievable.benchmark_gaps`); readers show it, never re-judge it.
    All None when figures about peers are withheld or the member has no value."""

    #: At or better than the benchmark, in the measure's direction.
    reaches: bool | None = None
    #: value - benchmark, on the stored value scale.
    distance: Number = None
    #: Improvement still needed (>= 0; 0 when reached), on the stored value scale.
    gap: Number = None
    #: gap / |benchmark|: how the executive summary ranks the largest gaps.
    relative_gap: Number = None


class PeerStanding(Payload):
    """A member's place within one peer group."""

    decile: Integer | None = None
    #: 1 = best, among ``ranked`` members of the group (on the shrunk value, like the decile).
    rank: Integer | None = None
    ranked: Integer = 0
    #: Against the group's own benchmark.
    benchmark: BenchmarkStanding = BenchmarkStanding()
    status: StatusPair | None = None


class ChangePayload(Payload):
    """Whether the member's value changed beyond chance over the cycle
    (:mod:`qicollab.stats.change`)."""

    verdict: Literal["improved", "worsened", "no clear change", "not assessed"]
    test: str
    first_label: str | None = None
    last_label: str | None = None
    first: Number = None
    last: Number = None
    #: last - first, stored scale (:attr:`qicollab.stats.change.Change.difference`): readers
    #: show and rank the move by it.
    difference: Number = None
    first_interval: Interval | None = None
    last_interval: Interval | None = None
    statistic: Number = None
    p_value: Number = None
    reason: str | None = None


class MemberPayload(Versioned):
    """A member's whole-cycle result of a measure (beside the row's columns)."""

    n: Number = None
    crude_rate: Number = None
    #: Observed / expected; for aggregate measures the value over the collaborative's.
    oe: Number = None
    #: Level key ("95", "99.8") -> its interval.
    oe_ci: dict[str, Interval] = {}
    shrunk_oe: Number = None
    #: 95% interval of ``shrunk_oe`` (the shrinkage model's posterior interval).
    shrunk_oe_ci95: Interval | None = None
    #: 95% interval of the shrunk value (the row's ``shrunk_value``), on the stored value scale.
    shrunk_ci95: Interval | None = None
    variance: Number = None
    periods: Integer | None = None
    se: Number = None
    interval_method: str
    z: Number = None
    #: Limit key ("95", "99.8", "adjusted_95", "adjusted_99.8") -> status at that limit.
    outlier: dict[str, str | None] = {}
    status: StatusPair = StatusPair()
    funnel_scale: Literal["oe", "value"]
    #: Limit key -> the member's (lower, upper) at its own precision, stored scale.
    funnel_limits: dict[str, Interval] = {}
    below_minimum_volume: bool = False
    outlier_note: str | None = None
    abc_member: bool = False
    #: Against the collaborative's benchmark.
    benchmark: BenchmarkStanding = BenchmarkStanding()
    decile_basis: str = "shrunk value; 1 = best tenth"
    #: 1 = best among ``ranked`` members (on the shrunk value, like the decile); None when
    #: figures about peers are withheld.
    rank: Integer | None = None
    ranked: Integer = 0
    peers: dict[str, PeerStanding] = {}
    change: ChangePayload | None = None


class PeriodPayload(Versioned):
    """A member's result in one reporting period."""

    period: str | None = None
    n: Number = None
    oe: Number = None
    oe_ci: dict[str, Interval] = {}
    below_minimum_volume: bool | None = None


# --- charts -------------------------------------------------------------------------------------


class ChartNote(Payload):
    """A dated annotation as drawn on a chart."""

    id: Integer
    date: str
    x: str | None
    kind: str
    label: str
    starts_phase: bool


class ControlChartPayload(Versioned):
    """A member's control chart of a measure: the SPC engine's chart and what it charts."""

    chart: StoredControlChart
    measure: str
    member_id: Integer
    member: str | None = None
    chart_reason: str
    #: Stored values x multiplier = display values (1 for O/E series).
    multiplier: float
    unit: str
    annotations: list[ChartNote] = []
    series: str
    source: str
    ratio: bool = False
    observed: Numbers | None = None
    expected: Numbers | None = None


class SequentialCommon(Versioned):
    """What an RA-CUSUM and a VLAD of one member's cases share."""

    measure: str
    member_id: Integer
    direction: str
    cases: Integer
    x: list[str]
    order: str
    model: str
    engine: str


class RaCusumPayload(SequentialCommon):
    """Risk-adjusted CUSUM (Steiner 2000) of one member's cases, upper and lower."""

    kind: Literal["racusum"] = "racusum"
    odds_ratio_upper: float
    odds_ratio_lower: float
    h_upper: float
    h_lower: float
    limit_upper: StoredCusumLimit
    limit_lower: StoredCusumLimit
    arl: float
    upper: Numbers
    lower: Numbers
    signals_upper: list[Integer]
    signals_lower: list[Integer]
    reset_after_signal: bool
    upper_means: str


class VladPayload(SequentialCommon):
    """Variable life-adjusted display: cumulative expected minus observed events."""

    kind: Literal["vlad"] = "vlad"
    vlad: Numbers
    observed: float
    expected: float
    meaning: str


#: Stored chart kind -> its payload class.
CHART_PAYLOADS: dict[str, type[Versioned]] = {
    "control": ControlChartPayload,
    "racusum": RaCusumPayload,
    "vlad": VladPayload,
}
