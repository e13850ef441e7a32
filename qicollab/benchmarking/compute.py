"""One measure's numbers: from the snapshot's rows to MemberResult / MeasureSummary rows.

Patient-level measures: the risk model is fitted on the pooled snapshot data; each member's
O = sum y, E = sum of expected values, O/E with exact (< 10 events) or Byar intervals at 95% and
99.8% (normal intervals with the model variance for outcomes that are not event counts, e.g.
length of stay), the risk-adjusted rate (O/E x collaborative rate), empirical-Bayes shrinkage,
and a funnel with overdispersion (the core's calibrated random-effects method unless the run
asks for a published one). Aggregate measures: proportions get Wilson intervals, a proportion
funnel and beta-binomial shrinkage; rates exact Poisson intervals, a ratio funnel against the
collaborative rate and gamma-Poisson shrinkage; means t intervals from the
member's months, a normal funnel and normal-normal shrinkage.

For every measure: the collaborative's and each peer group's distribution of member values,
direction-aware deciles (ranked on the shrunk values, so small members do not top the table by
chance), the Achievable Benchmark of Care and each member's distance to it. Outlier status is
direction-aware ("worse" / "as-expected" / "better"); at 95% it is the warning, at 99.8% the
alarm, each on the overdispersion-adjusted limits when the funnel is overdispersed. Members
below the measure's minimum volume get no status, and the payload says why.

Values are stored on their natural scale (proportions 0-1, events per unit of exposure, days);
pages multiply by the measure's ``multiplier`` for display.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from qicollab.benchmarking import loading, methods
from qicollab.benchmarking.inputs import MeasureInfo, MeasureOutput, RunInputs
from qicollab.benchmarking.payloads import (
    AbcPayload,
    BenchmarkStanding,
    ChangePayload,
    Distribution,
    FunnelPayload,
    MemberPayload,
    ModelInfo,
    PeerStanding,
    PeriodPayload,
    ShrinkagePayload,
    StatusPair,
    SummaryPayload,
    YearValue,
)
from qicollab.benchmarking.settings import RunSettings
from qicollab.db import READ_ONLY_OPTION
from qicollab.jobs.workers import consumer_name
from qicollab.measures.spec import OutcomeFamily
from qicollab.stats import achievable, peer, pooling
from qicollab.stats import change as stats_change
from qicollab.stats import intervals as stats_intervals

if TYPE_CHECKING:
    from qicollab.benchmarking.methods import Funnel

#: Stored statuses.
WORSE, AS_EXPECTED, BETTER = "worse", "as-expected", "better"
COUNT_FAMILIES = {OutcomeFamily.BINOMIAL.value, OutcomeFamily.POISSON.value}


def json_safe(value: Any) -> Any:
    """Payloads are JSON (JSONB on PostgreSQL): no NaN or infinity, no numpy scalars."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def direction_status(flag: str | None, *, higher_is_better: bool) -> str:
    """Turn a funnel's "high"/"low" into "worse"/"better" for the measure's direction."""
    if flag is None:
        return AS_EXPECTED
    if flag == "high":
        return BETTER if higher_is_better else WORSE
    return WORSE if higher_is_better else BETTER


@dataclass
class Units:
    """Per-member statistics of one measure over the whole cycle, aligned arrays."""

    member_ids: np.ndarray
    volume: np.ndarray  # cases or denominator, for the minimum-volume rule
    observed: np.ndarray
    expected: np.ndarray | None
    denominator: np.ndarray
    value: np.ndarray
    ci: dict[str, tuple[np.ndarray, np.ndarray]]  # "95"/"99.8" -> value-scale limits
    shrunk: np.ndarray
    #: The shrunk values' 95% intervals on the value scale (None without shrinkage).
    shrunk_ci: tuple[np.ndarray, np.ndarray] | None
    shrinkage: ShrinkagePayload
    funnel_for: Callable[[np.ndarray], Funnel]
    #: ABC inputs: numerator/denominator pooled over the benchmark members, and the ranking.
    abc_numerator: np.ndarray
    abc_denominator: np.ndarray
    abc_rank_by: np.ndarray | None
    overall: float
    #: Measure-specific summary fields (:class:`SummaryPayload` keywords).
    summary: dict[str, Any] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    #: The funnel's own scale -> the stored limits' scale (aggregate rates: O/E -> rate), and
    #: its precision axis -> the stored x (aggregate rates: expected events -> exposure).
    funnel_to_value: float = 1.0
    funnel_x_scale: float = 1.0
    #: What the stored funnel limits are: "oe" (patient-level) or "value".
    funnel_scale_name: str = "value"
    #: How a member's change over the cycle is tested (:mod:`qicollab.stats.change`):
    #: "proportion" (events of cases), "rate" (events against exposure or expected events)
    #: or "mean" (period values).
    change_kind: str = "rate"


# --- entry point ------------------------------------------------------------------------------


def measure_job(
    submission_ids: Sequence[int],
    measure: MeasureInfo,
    inputs: RunInputs,
    *,
    engine: sa.Engine,
) -> MeasureOutput:
    """Load one measure's snapshot data and compute its numbers and charts (in the service's
    process, or in a worker's measure task: everything it needs arrives as plain values)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    reader = engine.execution_options(**{READ_ONLY_OPTION: True})
    with reader.connect() as connection, connection.begin():
        if measure.level == "patient":
            spec = measure.spec
            assert spec is not None
            data = loading.load_patients(connection, submission_ids, spec)
        else:
            data = loading.load_aggregate(connection, submission_ids, [measure.id])
    seconds["load"] = time.perf_counter() - started
    output = compute_measure(measure, inputs, data, seconds=seconds)
    if inputs.settings.charts:
        from qicollab.benchmarking.charts import measure_charts  # noqa: PLC0415

        started = time.perf_counter()
        output.charts = measure_charts(measure, inputs, data, output)
        seconds["charts"] = time.perf_counter() - started
    output.seconds = {key: round(value, 3) for key, value in seconds.items()}
    output.worker = consumer_name()
    return output


def compute_measure(
    measure: MeasureInfo,
    inputs: RunInputs,
    data: pd.DataFrame,
    *,
    seconds: dict[str, float] | None = None,
) -> MeasureOutput:
    """The numbers of one measure from its loaded data (patient rows or aggregate values)."""
    seconds = seconds if seconds is not None else {}
    output = MeasureOutput(measure_id=measure.id)
    if data.empty:
        output.notes.append(f"{measure.code}: no accepted data in the snapshot")
        output.summaries.append(_empty_summary(measure, "no accepted data in the snapshot"))
        return output
    try:
        if measure.level == "patient":
            units, periods = _patient_units(measure, inputs, data, output, seconds)
        else:
            units, periods = _aggregate_units(measure, inputs, data)
    except methods.MeasureNotComputableError as error:
        output.notes.append(f"{measure.code}: {error}")
        output.summaries.append(_empty_summary(measure, str(error)))
        return output
    started = time.perf_counter()
    changes = member_changes(measure, inputs, periods, units)
    years = collaborative_years(measure, inputs, periods, units)
    _finish(measure, inputs, units, output, changes, years)
    output.members.extend(periods)
    seconds["results"] = seconds.get("results", 0.0) + time.perf_counter() - started
    return output


def _empty_summary(measure: MeasureInfo, reason: str) -> dict[str, Any]:
    return {
        "scope": "collaborative",
        "peer_group_id": None,
        "n_members": 0,
        "observed": None,
        "expected": None,
        "denominator": None,
        "rate": None,
        "abc": None,
        "payload": SummaryPayload(
            **_measure_fields(measure), computed=False, reason=reason
        ).to_json(),
    }


def _measure_fields(measure: MeasureInfo) -> dict[str, Any]:
    """What every summary repeats about its measure."""
    return {
        "measure": measure.code,
        "measure_type": measure.measure_type,
        "level": measure.level,
        "direction": measure.direction,
        "multiplier": measure.multiplier,
        "unit": measure.unit,
        "target": measure.target,
        "minimum_volume": measure.minimum_volume,
    }


def _exp(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else np.exp(values)


def _scaled_interval(
    shrink: methods.Shrinkage, scale: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The shrunk estimates' interval on the value scale (O/E x ``scale``), or None."""
    if shrink.lower is None or shrink.upper is None:
        return None
    return shrink.lower * scale, shrink.upper * scale


def _pair(
    low: np.ndarray | None, high: np.ndarray | None, i: int
) -> tuple[float | None, float | None] | None:
    """One member's stored interval (None when there is none or it is not finite)."""
    if low is None or high is None:
        return None
    pair = (_number(low[i]), _number(high[i]))
    return pair if None not in pair else None


def _ratio_to_collaborative(
    value: np.ndarray,
    ci: dict[str, tuple[np.ndarray, np.ndarray]],
    overall: float,
    i: int,
) -> dict[str, Any]:
    """An aggregate member's value over the collaborative's, with its intervals: the
    caterpillar's and the export's O/E of measures without a risk model."""
    if not overall or not math.isfinite(overall):
        return {}
    return {
        "oe": _number(value[i] / overall),
        "oe_ci": {key: (low[i] / overall, high[i] / overall) for key, (low, high) in ci.items()},
    }


def _unshrunk(values: np.ndarray) -> methods.Shrinkage:
    """The run's ``shrinkage = "none"``: members' own values, ranked as they are."""
    return methods.Shrinkage("none (members' own values)", np.asarray(values, dtype=float), {})


# --- patient-level measures -------------------------------------------------------------------


def _patient_units(
    measure: MeasureInfo,
    inputs: RunInputs,
    data: pd.DataFrame,
    output: MeasureOutput,
    seconds: dict[str, float],
) -> tuple[Units, list[dict[str, Any]]]:
    spec = measure.spec
    assert spec is not None
    settings = inputs.settings
    started = time.perf_counter()
    fit = methods.fit_risk_model(data, spec)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    output.fit = {
        "family": fit.family,
        "n": fit.n,
        "events": fit.events,
        "specification": spec.to_json(),
        "coefficients": json_safe(fit.coefficients),
        "diagnostics": json_safe(fit.diagnostics),
    }
    used = fit.used
    y = data["outcome"].to_numpy(dtype=float)[used]
    expected = fit.expected[used]
    variance = fit.variance[used]
    member = data["member_id"].to_numpy()[used]
    period = data["period_id"].to_numpy()[used]
    # Expected values per row, kept for the charts (monthly O/E, RA-CUSUM).
    data["_expected"] = fit.expected
    data["_variance"] = fit.variance

    member_ids, index = np.unique(member, return_inverse=True)
    n = np.bincount(index).astype(float)
    o = np.bincount(index, weights=y)
    e = np.bincount(index, weights=expected)
    v = np.bincount(index, weights=variance)
    overall = float(y.sum() / len(y))
    counts = fit.family in COUNT_FAMILIES
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, o / e, np.nan)
    ratio_ci: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for level in settings.levels:
        key = methods.level_key(level)
        if counts:
            ratio_ci[key] = methods.oe_interval(o, e, level)
        else:
            ratio_ci[key] = methods.normal_ratio_interval(o, e, v, level)
    method = settings.funnel_ratio
    trim = settings.trim
    levels = settings.levels

    def funnel_for(mask: np.ndarray) -> Funnel:
        return methods.funnel_ratio(
            o[mask],
            e[mask],
            method=method,
            trim=trim,
            variance=None if counts else v[mask],
            levels=levels,
        )

    if settings.shrinkage == "none":
        shrink = _unshrunk(ratio)
    elif fit.family == "binomial":
        shrink = methods.eb_random_intercept(fit, y, member)
    elif counts:
        shrink = methods.eb_gamma_poisson(o, e)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(ratio)
            se = np.sqrt(v) / o
        shrink = methods.eb_normal(log_ratio, se, 0.0)
        shrink = methods.Shrinkage(
            "normal-normal (log O/E)",
            np.exp(shrink.estimate),
            shrink.params,
            _exp(shrink.lower),
            _exp(shrink.upper),
        )
    value = ratio * overall
    units = Units(
        member_ids=member_ids,
        volume=n,
        observed=o,
        expected=e,
        denominator=n,
        value=value,
        ci={key: (low * overall, high * overall) for key, (low, high) in ratio_ci.items()},
        shrunk=shrink.estimate * overall,
        shrunk_ci=_scaled_interval(shrink, overall),
        shrinkage=ShrinkagePayload.of(shrink.method, shrink.params, applied_to="O/E"),
        funnel_for=funnel_for,
        abc_numerator=value * n,
        abc_denominator=n,
        # Binary outcomes: AFP ranking of risk-adjusted events, as for proportions; other
        # outcomes rank on the shrunk value (what AFP does for small members).
        abc_rank_by=None if fit.family == "binomial" else shrink.estimate * overall,
        overall=overall,
        funnel_scale_name="oe",
        change_kind="rate" if counts else "mean",
    )
    units.extra = [
        {
            "n": float(n[i]),
            "crude_rate": float(o[i] / n[i]),
            "oe": _number(ratio[i]),
            "oe_ci": {key: (low[i], high[i]) for key, (low, high) in ratio_ci.items()},
            "shrunk_oe": _number(shrink.estimate[i]),
            "shrunk_oe_ci95": _pair(shrink.lower, shrink.upper, i),
            "variance": float(v[i]),
            "interval_method": "exact (<10 events) / Byar" if counts else "normal, model variance",
        }
        for i in range(len(member_ids))
    ]
    units.summary = {
        "model": ModelInfo(family=fit.family, c_statistic=fit.diagnostics.get("c_statistic")),
        "observed_total": float(o.sum()),
        "expected_total": float(e.sum()),
    }
    periods = _patient_period_rows(
        member, period, y, expected, variance, overall, counts, settings, inputs
    )
    seconds["aggregate"] = time.perf_counter() - started
    return units, periods


def _patient_period_rows(  # noqa: PLR0917 - private helper with aligned arrays
    member: np.ndarray,
    period: np.ndarray,
    y: np.ndarray,
    expected: np.ndarray,
    variance: np.ndarray,
    overall: float,
    counts: bool,
    settings: RunSettings,
    inputs: RunInputs,
) -> list[dict[str, Any]]:
    frame = pd.DataFrame({"m": member, "p": period, "y": y, "e": expected, "v": variance})
    grouped = frame.groupby(["m", "p"], sort=True).agg(
        n=("y", "size"), o=("y", "sum"), e=("e", "sum"), v=("v", "sum")
    )
    o = grouped["o"].to_numpy()
    e = grouped["e"].to_numpy()
    v = grouped["v"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, o / e, np.nan)
    cis = {}
    for level in settings.levels:
        key = methods.level_key(level)
        cis[key] = (
            methods.oe_interval(o, e, level)
            if counts
            else methods.normal_ratio_interval(o, e, v, level)
        )
    rows = []
    for i, (member_id, period_id) in enumerate(grouped.index):
        info = inputs.periods.get(int(period_id))
        low95, high95 = cis.get("95", (None, None))
        low998, high998 = cis.get("99.8", (None, None))
        rows.append(
            {
                "member_id": int(member_id),
                "period_id": int(period_id),
                "observed": float(o[i]),
                "expected": float(e[i]),
                "denominator": float(grouped["n"].iloc[i]),
                "value": _number(ratio[i] * overall),
                "ci95_low": _number(low95[i] * overall) if low95 is not None else None,
                "ci95_high": _number(high95[i] * overall) if high95 is not None else None,
                "ci998_low": _number(low998[i] * overall) if low998 is not None else None,
                "ci998_high": _number(high998[i] * overall) if high998 is not None else None,
                "shrunk_value": None,
                "outlier_status": None,
                "decile": None,
                "distance_to_abc": None,
                "payload": PeriodPayload(
                    period=info.label if info else None,
                    oe=ratio[i],
                    oe_ci={k: (lo[i], hi[i]) for k, (lo, hi) in cis.items()},
                    n=grouped["n"].iloc[i],
                ).to_json(),
            }
        )
    return rows


# --- aggregate measures -----------------------------------------------------------------------


def _aggregate_units(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame
) -> tuple[Units, list[dict[str, Any]]]:
    kind = measure.measure_type
    if kind in {"mean", "time-between-events"}:
        return _mean_units(measure, inputs, data)
    settings = inputs.settings
    levels = settings.levels
    trim = settings.trim
    usable = data[data["denominator"].notna() & data["numerator"].notna()]
    sums = usable.groupby("member_id", sort=True)[["numerator", "denominator"]].sum()
    member_ids = sums.index.to_numpy()
    x = sums["numerator"].to_numpy(dtype=float)
    n = sums["denominator"].to_numpy(dtype=float)
    if not len(member_ids) or n.sum() <= 0:
        msg = "no member has a positive denominator"
        raise methods.MeasureNotComputableError(msg)
    overall = float(x.sum() / n.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, x / n, np.nan)
    if kind == "proportion":
        ci = {methods.level_key(level): methods.wilson(x, n, level) for level in levels}

        proportion_method = settings.funnel_proportion

        def funnel_for(mask: np.ndarray) -> Funnel:
            return methods.funnel_proportion(
                x[mask], n[mask], method=proportion_method, trim=trim, levels=levels
            )

        shrink = _unshrunk(rate) if settings.shrinkage == "none" else methods.eb_beta_binomial(x, n)
        expected = None
        rank_by = None  # AFP, as published
        interval = "Wilson"
        funnel_scale = 1.0
    else:  # rates and ratios of counts to exposure
        ci = {
            methods.level_key(level): methods.poisson_rate_interval(x, n, level) for level in levels
        }
        expected = n * overall
        method = settings.funnel_ratio

        def funnel_for(mask: np.ndarray) -> Funnel:
            return methods.funnel_ratio(
                x[mask], n[mask] * overall, method=method, trim=trim, levels=levels
            )

        if settings.shrinkage == "none":
            shrink = _unshrunk(rate)
        else:
            gamma = methods.eb_gamma_poisson(x, expected)
            low, high = _scaled_interval(gamma, overall) or (None, None)
            shrink = methods.Shrinkage(
                gamma.method, gamma.estimate * overall, gamma.params, low, high
            )
        rank_by = shrink.estimate
        interval = "exact Poisson"
        funnel_scale = overall
    units = Units(
        member_ids=member_ids,
        volume=n,
        observed=x,
        expected=expected,
        denominator=n,
        value=rate,
        ci=ci,
        shrunk=shrink.estimate,
        shrunk_ci=_scaled_interval(shrink, 1.0),
        shrinkage=ShrinkagePayload.of(shrink.method, shrink.params),
        funnel_for=funnel_for,
        abc_numerator=x,
        abc_denominator=n,
        abc_rank_by=rank_by,
        overall=overall,
        funnel_to_value=funnel_scale,
        funnel_x_scale=1 / funnel_scale,
        change_kind="proportion" if kind == "proportion" else "rate",
    )
    units.extra = [
        {"n": float(n[i]), "interval_method": interval, "periods": 0}
        | _ratio_to_collaborative(rate, ci, overall, i)
        for i in range(len(member_ids))
    ]
    counts = usable.groupby("member_id", sort=True).size()
    for i, member_id in enumerate(member_ids):
        units.extra[i]["periods"] = int(counts.get(member_id, 0))
    units.summary = {"numerator_total": float(x.sum())}
    # Per member x period: the period's value with its interval.
    px = usable["numerator"].to_numpy(dtype=float)
    pn = usable["denominator"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        prate = np.where(pn > 0, px / pn, np.nan)
    pci = {}
    for level in levels:
        key = methods.level_key(level)
        pci[key] = (
            methods.wilson(px, pn, level)
            if kind == "proportion"
            else methods.poisson_rate_interval(px, pn, level)
        )
    rows = []
    minimum = measure.minimum_volume
    for i, (member_id, period_id) in enumerate(
        zip(usable["member_id"].tolist(), usable["period_id"].tolist(), strict=True)
    ):
        info = inputs.periods.get(int(period_id))
        rows.append(
            _period_row(
                member_id,
                period_id,
                observed=px[i],
                expected=pn[i] * overall if kind != "proportion" else None,
                denominator=pn[i],
                value=prate[i],
                ci={key: (lo[i], hi[i]) for key, (lo, hi) in pci.items()},
                payload=PeriodPayload(
                    period=info.label if info else None,
                    below_minimum_volume=bool(pn[i] < minimum),
                ),
            )
        )
    return units, rows


def _mean_units(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame
) -> tuple[Units, list[dict[str, Any]]]:
    settings = inputs.settings
    levels = settings.levels
    trim = settings.trim
    usable = data[data["value"].notna()].copy()
    if usable.empty:
        msg = "no member submitted a value"
        raise methods.MeasureNotComputableError(msg)
    usable["weight"] = usable["denominator"].fillna(1.0).clip(lower=0)
    usable["wv"] = usable["weight"] * usable["value"]
    grouped = usable.groupby("member_id", sort=True)
    sums = grouped[["weight", "wv"]].sum()
    k = grouped.size().to_numpy(dtype=float)
    sd = grouped["value"].std(ddof=1).to_numpy(dtype=float)
    member_ids = sums.index.to_numpy()
    weight = sums["weight"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(weight > 0, sums["wv"].to_numpy() / weight, np.nan)
        # The spread of the member's own periods: it carries the month-to-month noise.
        se = sd / np.sqrt(k)
    overall = float(usable["wv"].sum() / usable["weight"].sum())
    ci = {
        methods.level_key(level): methods.mean_interval(mean, se, k - 1, level) for level in levels
    }
    shrink = (
        _unshrunk(mean) if settings.shrinkage == "none" else methods.eb_normal(mean, se, overall)
    )

    def funnel_for(mask: np.ndarray) -> Funnel:
        target = float(np.sum(mean[mask] * weight[mask]) / np.sum(weight[mask]))
        return methods.funnel_normal(
            mean[mask], se[mask], target, trim=trim, levels=levels, precision=weight[mask]
        )

    units = Units(
        member_ids=member_ids,
        volume=weight,
        observed=None,  # type: ignore[arg-type]
        expected=None,
        denominator=weight,
        value=mean,
        ci=ci,
        shrunk=shrink.estimate,
        shrunk_ci=_scaled_interval(shrink, 1.0),
        shrinkage=ShrinkagePayload.of(shrink.method, shrink.params),
        funnel_for=funnel_for,
        abc_numerator=mean * weight,
        abc_denominator=weight,
        abc_rank_by=shrink.estimate,
        overall=overall,
        change_kind="mean",
    )
    units.extra = [
        {
            "n": float(weight[i]),
            "periods": int(k[i]),
            "se": _number(se[i]),
            "interval_method": "t interval over the member's periods",
        }
        | _ratio_to_collaborative(mean, ci, overall, i)
        for i in range(len(member_ids))
    ]
    units.summary = {}
    rows = []
    for member_id, period_id, value, n in zip(
        usable["member_id"].tolist(),
        usable["period_id"].tolist(),
        usable["value"].tolist(),
        usable["weight"].tolist(),
        strict=True,
    ):
        info = inputs.periods.get(int(period_id))
        rows.append(
            _period_row(
                member_id,
                period_id,
                observed=None,
                expected=None,
                denominator=n,
                value=value,
                ci={},
                payload=PeriodPayload(
                    period=info.label if info else None,
                    below_minimum_volume=bool(n < measure.minimum_volume),
                ),
            )
        )
    return units, rows


def _period_row(
    member_id: int,
    period_id: int,
    *,
    observed: float | None,
    expected: float | None,
    denominator: float | None,
    value: float | None,
    ci: dict[str, tuple[float, float]],
    payload: PeriodPayload,
) -> dict[str, Any]:
    low95, high95 = ci.get("95", (None, None))
    low998, high998 = ci.get("99.8", (None, None))
    return {
        "member_id": int(member_id),
        "period_id": int(period_id),
        "observed": _number(observed),
        "expected": _number(expected),
        "denominator": _number(denominator),
        "value": _number(value),
        "ci95_low": _number(low95),
        "ci95_high": _number(high95),
        "ci998_low": _number(low998),
        "ci998_high": _number(high998),
        "shrunk_value": None,
        "outlier_status": None,
        "decile": None,
        "distance_to_abc": None,
        "payload": payload.to_json(),
    }


# --- what every measure shares ----------------------------------------------------------------


def _statuses(
    funnel: Funnel | None, count: int, *, higher_is_better: bool
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Direction-aware statuses per limit, and the warning (95%) and alarm (99.8%) statuses:
    the adjusted limits when the funnel is overdispersed, else the unadjusted ones. Without a
    funnel (too few contributors) there are none."""
    by_limit: dict[str, list[str]] = {}
    if funnel is None:
        return by_limit, [AS_EXPECTED] * count, [AS_EXPECTED] * count
    for key, flags in funnel.flags.items():
        by_limit[key] = [direction_status(f, higher_is_better=higher_is_better) for f in flags]
    for key, flags in funnel.adjusted_flags.items():
        by_limit[f"adjusted_{key}"] = [
            direction_status(f, higher_is_better=higher_is_better) for f in flags
        ]
    prefix = "adjusted_" if funnel.adjusted else ""
    warning = by_limit.get(f"{prefix}95", [AS_EXPECTED] * count)
    alarm = by_limit.get(f"{prefix}99.8", [AS_EXPECTED] * count)
    return by_limit, warning, alarm


def _curve_rows(
    curve: dict[str, Any], key: str, x_scale: float, scale: float
) -> list[tuple[float, float, float]]:
    """(x, lower, upper) points of one limit of a funnel's curve, on the stored scales."""
    if key not in curve:
        return []
    low, high = curve[key]
    return [
        (x * x_scale, lo * scale, hi * scale)
        for x, lo, hi in zip(curve["x"], low, high, strict=True)
    ]


def _funnel_payload(funnel: Funnel, units: Units) -> FunnelPayload:
    """The funnel as stored: its statistics and both sets of limit curves; ``adjusted`` says
    which set decided the statuses."""
    curve = funnel.curve
    x_scale, scale = units.funnel_x_scale, units.funnel_to_value
    levels = [key for key in ("95", "99.8") if key in curve]
    return FunnelPayload(
        method=funnel.method,
        transform=funnel.scale,
        scale=units.funnel_scale_name,
        x="expected" if units.funnel_scale_name == "oe" else "denominator",
        target=funnel.target * scale,
        phi=funnel.phi,
        tau2=funnel.tau2,
        overdispersed=funnel.overdispersed,
        adjusted=funnel.adjusted,
        note=funnel.note,
        units_used_for_dispersion=funnel.units_used,
        unadjusted_limits={key: _curve_rows(curve, key, x_scale, scale) for key in levels},
        adjusted_limits={
            key: _curve_rows(curve, f"adjusted_{key}", x_scale, scale) for key in levels
        },
    )


def _ranks(values: np.ndarray, *, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = best, 0 = no value) and decile of each member: the stats core's ranking."""
    rank, decile, _ = peer.decile_ranks(
        np.asarray(values, dtype=float),
        improvement="increase" if higher_is_better else "decrease",
    )
    return rank, decile


def benchmark_standings(
    values: np.ndarray, benchmark: float | None, *, higher_is_better: bool
) -> list[BenchmarkStanding]:
    """Each member's value against a benchmark, as stored (all None without a benchmark)."""
    judged = achievable.benchmark_gaps(values, benchmark, lower_is_better=not higher_is_better)
    return [
        BenchmarkStanding(
            reaches=bool(judged.reaches[i]),
            distance=judged.distance[i],
            gap=judged.gap[i],
            relative_gap=judged.relative_gap[i],
        )
        if judged.known[i]
        else BenchmarkStanding()
        for i in range(len(judged.known))
    ]


def withheld_reason(contributors: int, minimum: int) -> str | None:
    """Why peer figures are not given, or None when enough members contributed."""
    if contributors >= minimum:
        return None
    return (
        f"only {contributors} member{'' if contributors == 1 else 's'} contributed "
        f"(at least {minimum} are needed before figures about peers are shown)"
    )


def collaborative_years(
    measure: MeasureInfo, inputs: RunInputs, periods: Sequence[dict[str, Any]], units: Units
) -> list[YearValue]:
    """The collaborative's value in each calendar year, pooled from the members' period rows
    by :func:`qicollab.stats.pooling.pool` (patient-level: sum O / sum E x the collaborative
    rate; proportions and rates: sum x / sum n; means: weighted by cases)."""
    rows = [r for r in periods if r["value"] is not None and int(r["period_id"]) in inputs.periods]
    if not rows:
        return []
    years = [inputs.periods[int(r["period_id"])].start.year for r in rows]
    members = [int(r["member_id"]) for r in rows]
    scale, interval = 1.0, True
    if measure.level == "patient":
        kind, top, bottom = "ratio", "observed", "expected"
        scale = units.overall
        # Outcomes that are not event counts (length of stay) have no Poisson interval.
        interval = units.change_kind == "rate"
    elif measure.measure_type == "proportion":
        kind, top, bottom = "proportion", "observed", "denominator"
    elif measure.measure_type in {"mean", "time-between-events"}:
        kind, top, bottom = "mean", "value", "denominator"
    else:
        kind, top, bottom = "rate", "observed", "denominator"
    pooled = pooling.pool(
        members,
        years,
        [np.nan if r[top] is None else r[top] for r in rows],
        [np.nan if r[bottom] is None else r[bottom] for r in rows],
        kind=kind,  # type: ignore[arg-type]
    )
    return [
        YearValue(
            year=p.group,
            value=p.value * scale,
            ci95=(p.lower * scale, p.upper * scale)
            if interval and p.lower is not None and p.upper is not None
            else None,
            members=p.members,
        )
        for p in pooled
    ]


def _finish(  # noqa: PLR0917 - private: one measure's results
    measure: MeasureInfo,
    inputs: RunInputs,
    units: Units,
    output: MeasureOutput,
    changes: dict[int, ChangePayload],
    years: list[YearValue],
) -> None:
    settings = inputs.settings
    better_high = measure.higher_is_better
    count = len(units.member_ids)
    minimum = settings.min_contributors
    everyone = np.ones(count, dtype=bool)
    withheld = withheld_reason(count, minimum)
    funnel = units.funnel_for(everyone) if withheld is None else None
    by_limit, warning, alarm = _statuses(funnel, count, higher_is_better=better_high)
    ranks, deciles = _ranks(units.shrunk, higher_is_better=better_high)
    fraction = settings.abc_fraction
    benchmark = methods.abc(
        units.abc_numerator,
        units.abc_denominator,
        higher_is_better=better_high,
        fraction=fraction,
        rank_by=units.abc_rank_by,
    )
    below = units.volume < measure.minimum_volume

    peers: dict[int, dict[str, PeerStanding]] = {i: {} for i in range(count)}
    peer_summaries = []
    for group in inputs.peer_groups:
        mask = np.array([int(m) in set(group.member_ids) for m in units.member_ids], dtype=bool)
        summary, group_statuses = _summary(
            measure,
            units,
            mask,
            scope="peer-group",
            minimum=minimum,
            group_id=group.id,
            group_code=group.code,
            fraction=fraction,
        )
        peer_summaries.append(summary)
        if not mask.any():
            continue
        group_payload = SummaryPayload.from_json(summary["payload"])
        group_ranks, group_deciles = _ranks(units.shrunk[mask], higher_is_better=better_high)
        shown = group_payload.withheld is None
        group_standings = benchmark_standings(
            units.value[mask], summary["abc"] if shown else None, higher_is_better=better_high
        )
        for rank, i in enumerate(np.flatnonzero(mask)):
            peers[i][group.code] = PeerStanding(
                decile=(int(group_deciles[rank]) or None) if shown else None,
                rank=(int(group_ranks[rank]) or None) if shown else None,
                ranked=int(np.count_nonzero(group_ranks)) if shown else 0,
                benchmark=group_standings[rank],
                status=StatusPair(warning=group_statuses[0][rank], alarm=group_statuses[1][rank])
                if group_statuses is not None and not below[i]
                else None,
            )

    collaborative, _ = _summary(
        measure,
        units,
        everyone,
        scope="collaborative",
        minimum=minimum,
        fraction=fraction,
        funnel=funnel,
        years=years,
        abc_members=[
            int(m) for m, chosen in zip(units.member_ids, benchmark.selected, strict=True) if chosen
        ],
    )
    output.summaries.append(collaborative)
    output.summaries.extend(peer_summaries)

    limit_scale = units.funnel_to_value
    abc_value = benchmark.value if withheld is None and math.isfinite(benchmark.value) else None
    standings = benchmark_standings(units.value, abc_value, higher_is_better=better_high)
    for i, member_id in enumerate(units.member_ids):
        extra = units.extra[i] if units.extra else {}
        note = None
        status: str | None = alarm[i] if funnel is not None else None
        warning_status: str | None = warning[i] if funnel is not None else None
        if withheld is not None:
            note = f"no outlier status: {withheld}"
        elif below[i]:
            note = (
                f"below the minimum volume of {measure.minimum_volume} "
                f"({units.volume[i]:g}): no outlier status"
            )
            status = None
            warning_status = None
        limits: dict[str, tuple[float, float]] = {}
        if funnel is not None:
            limits = {
                key: (low[i] * limit_scale, high[i] * limit_scale)
                for key, (low, high) in funnel.limits.items()
            } | {
                f"adjusted_{key}": (low[i] * limit_scale, high[i] * limit_scale)
                for key, (low, high) in funnel.adjusted_limits.items()
            }
        payload = MemberPayload(
            **extra,
            z=funnel.z[i] if funnel is not None else None,
            outlier={key: values[i] for key, values in by_limit.items()},
            status=StatusPair(warning=warning_status, alarm=status),
            funnel_scale=units.funnel_scale_name,
            funnel_limits=limits,
            below_minimum_volume=bool(below[i]),
            outlier_note=note,
            shrunk_ci95=_pair(*units.shrunk_ci, i) if units.shrunk_ci is not None else None,
            abc_member=bool(benchmark.selected[i]) and withheld is None,
            benchmark=standings[i],
            rank=(int(ranks[i]) or None) if withheld is None else None,
            ranked=int(np.count_nonzero(ranks)) if withheld is None else 0,
            peers=peers[i],
            change=changes.get(int(member_id)),
        )
        output.members.append(
            {
                "member_id": int(member_id),
                "period_id": None,
                "observed": _number(units.observed[i]) if units.observed is not None else None,
                "expected": _number(units.expected[i]) if units.expected is not None else None,
                "denominator": _number(units.denominator[i]),
                "value": _number(units.value[i]),
                "ci95_low": _number(units.ci["95"][0][i]) if "95" in units.ci else None,
                "ci95_high": _number(units.ci["95"][1][i]) if "95" in units.ci else None,
                "ci998_low": _number(units.ci["99.8"][0][i]) if "99.8" in units.ci else None,
                "ci998_high": _number(units.ci["99.8"][1][i]) if "99.8" in units.ci else None,
                "shrunk_value": _number(units.shrunk[i]),
                "outlier_status": status,
                "decile": (int(deciles[i]) or None) if withheld is None else None,
                "distance_to_abc": standings[i].distance,
                "payload": payload.to_json(),
            }
        )


def _summary(
    measure: MeasureInfo,
    units: Units,
    mask: np.ndarray,
    *,
    scope: str,
    minimum: int,
    fraction: float,
    group_id: int | None = None,
    group_code: str | None = None,
    funnel: Funnel | None = None,
    abc_members: list[int] | None = None,
    years: list[YearValue] | None = None,
) -> tuple[dict[str, Any], tuple[list[str], list[str]] | None]:
    """The stored summary row of the members in ``mask``, and their (warning, alarm) statuses
    on this scope's own funnel (None without one)."""
    better_high = measure.higher_is_better
    members = int(mask.sum())
    fields: dict[str, Any] = {
        **_measure_fields(measure),
        "scope_code": group_code,
        "contributors": members,
        "min_contributors": minimum,
    }
    row: dict[str, Any] = {
        "scope": scope,
        "peer_group_id": group_id,
        "n_members": members,
        "observed": None,
        "expected": None,
        "denominator": None,
        "rate": None,
        "abc": None,
    }
    if not members:
        fields["note"] = "no member of this group has data for the measure"
        return row | {"payload": SummaryPayload(**fields).to_json()}, None
    observed = float(np.nansum(units.observed[mask])) if units.observed is not None else None
    expected = float(np.nansum(units.expected[mask])) if units.expected is not None else None
    denominator = float(np.nansum(units.denominator[mask]))
    if measure.level == "patient" and observed is not None and expected:
        rate = observed / expected * units.overall
    elif measure.measure_type in {"mean", "time-between-events"}:
        rate = float(np.nansum(units.abc_numerator[mask]) / denominator) if denominator else None
    else:
        rate = observed / denominator if observed is not None and denominator else None
    # The scope's own totals are its members' own data; figures about peers need k members.
    row |= {"observed": observed, "expected": expected, "denominator": denominator}
    fields |= {"shrinkage": units.shrinkage, "overall": units.overall, **units.summary}
    withheld = withheld_reason(members, minimum)
    if withheld is not None:
        fields |= {"withheld": withheld, "funnel_note": f"no funnel: {withheld}"}
        return row | {"payload": SummaryPayload(**fields).to_json()}, None
    benchmark = methods.abc(
        units.abc_numerator[mask],
        units.abc_denominator[mask],
        higher_is_better=better_high,
        fraction=fraction,
        rank_by=None if units.abc_rank_by is None else units.abc_rank_by[mask],
    )
    if abc_members is None:
        ids = units.member_ids[mask]
        abc_members = [int(m) for m, chosen in zip(ids, benchmark.selected, strict=True) if chosen]
    if funnel is None:
        funnel = units.funnel_for(mask)
    _, warning, alarm = _statuses(funnel, members, higher_is_better=better_high)
    reaching = achievable.benchmark_gaps(
        units.value[mask], benchmark.value, lower_is_better=not better_high
    ).reaches
    fields |= {
        "at_benchmark": int(reaching.sum()),
        "years": years or [],
        "funnel": _funnel_payload(funnel, units),
        "distribution": Distribution(**methods.distribution(units.value[mask])),
        "distribution_shrunk": Distribution(**methods.distribution(units.shrunk[mask])),
        "abc": AbcPayload(
            value=benchmark.value,
            method=benchmark.method,
            fraction=fraction,
            members=int(benchmark.selected.sum()),
            direction=measure.direction,
            member_ids=abc_members,
        ),
    }
    row |= {"rate": _number(rate), "abc": _number(benchmark.value)}
    return row | {"payload": SummaryPayload(**fields).to_json()}, (warning, alarm)


# --- change over the cycle ----------------------------------------------------------------------


def _year_sums(
    rows: Sequence[dict[str, Any]], inputs: RunInputs
) -> dict[int, dict[int, list[dict[str, Any]]]]:
    """Period rows per member, then per calendar year of the period's start (oldest first)."""
    out: dict[int, dict[int, list[dict[str, Any]]]] = {}
    for row in rows:
        info = inputs.periods.get(int(row["period_id"]))
        if info is None or row["value"] is None:
            continue
        out.setdefault(int(row["member_id"]), {}).setdefault(info.start.year, []).append(row)
    return {member: dict(sorted(years.items())) for member, years in out.items()}


def _total(rows: Sequence[dict[str, Any]], key: str) -> float:
    return float(sum(row[key] or 0.0 for row in rows))


def member_changes(
    measure: MeasureInfo, inputs: RunInputs, periods: Sequence[dict[str, Any]], units: Units
) -> dict[int, ChangePayload]:
    """Each member's change from its first to its last calendar year with data, tested by
    :mod:`qicollab.stats.change` (a verdict beyond chance, with the test named), with both
    years' values and 95% intervals on the stored value scale."""
    better_high = measure.higher_is_better
    out: dict[int, ChangePayload] = {}
    for member_id, years in _year_sums(periods, inputs).items():
        labels = [str(year) for year in years]
        if len(years) < 2:
            test = {
                "proportion": stats_change.PROPORTION_TEST,
                "rate": stats_change.RATE_TEST,
                "mean": stats_change.MEAN_TEST,
            }[units.change_kind]
            out[member_id] = ChangePayload(
                verdict="not assessed",
                test=test,
                first_label=labels[0] if labels else None,
                reason="fewer than two calendar years of data",
            )
            continue
        first, last = years[min(years)], years[max(years)]
        intervals: list[tuple[float, float] | None] = []
        if units.change_kind == "proportion":
            pairs = [(_total(r, "observed"), _total(r, "denominator")) for r in (first, last)]
            result = stats_change.compare_proportions(
                pairs[0], pairs[1], higher_is_better=better_high
            )
            scale = 1.0
            for x, n in pairs:
                low, high = methods.wilson(np.array([x]), np.array([n]), 0.95)
                intervals.append((float(low[0]), float(high[0])))
        elif units.change_kind == "rate":
            # Patient-level counts: O against E, shown as risk-adjusted rates (O/E x the
            # collaborative's rate); aggregate rates: events against exposure.
            patient = measure.level == "patient"
            key = "expected" if patient else "denominator"
            pairs = [(_total(r, "observed"), _total(r, key)) for r in (first, last)]
            result = stats_change.compare_rates(pairs[0], pairs[1], higher_is_better=better_high)
            scale = units.overall if patient else 1.0
            for o, e in pairs:
                if patient:
                    low, high = methods.oe_interval(np.array([o]), np.array([e]), 0.95)
                else:
                    low, high = methods.poisson_rate_interval(np.array([o]), np.array([e]), 0.95)
                intervals.append((float(low[0]) * scale, float(high[0]) * scale))
        else:
            values = [[float(r["value"]) for r in rows] for rows in (first, last)]
            result = stats_change.compare_means(values[0], values[1], higher_is_better=better_high)
            scale = 1.0
            for v in values:
                if len(v) < 2:
                    intervals.append(None)
                    continue
                interval = stats_intervals.sample_mean_interval(v, level=0.95)
                intervals.append(interval.as_floats())
        result = result.scaled(scale)
        out[member_id] = ChangePayload(
            verdict=result.verdict,
            test=result.test,
            first_label=labels[0],
            last_label=labels[-1],
            first=result.first,
            last=result.last,
            difference=result.difference,
            first_interval=intervals[0],
            last_interval=intervals[1],
            p_value=result.p_value,
            reason=result.reason,
        )
    return out
