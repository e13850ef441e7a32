"""``qicollab analyze``: the statistics engine on a CSV file, no database needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from qicollab.cli import cli
from qicollab.cli._csv import CsvError, CsvTable, json_number, read_csv


@cli.group()
def analyze() -> None:
    """Run the benchmarking and SPC engine on a CSV file and print JSON."""


def _emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(_clean(payload), indent=2, allow_nan=False))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return json_number(value)


def _split(option: str | None) -> list[str]:
    return [part.strip() for part in (option or "").split(",") if part.strip()]


def _units(table: CsvTable, column: str) -> pd.Series:
    return table.text(column)


def _check_unique(table: CsvTable, units: pd.Series, column: str) -> None:
    duplicated = units.duplicated(keep="first").to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero((units == units.iloc[row]).to_numpy())[0])
        msg = (
            f"{table.where(row, column)}: unit {units.iloc[row]!r} already appears in data row "
            f"{first + 1}; pass --aggregate to sum rows per unit"
        )
        raise CsvError(msg)


# --- funnel -----------------------------------------------------------------------------------


@analyze.command("funnel")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--unit", "unit_col", required=True, help="Column identifying the unit.")
@click.option(
    "--observed",
    "observed_col",
    required=True,
    help="Observed count O (ratios) or numerator x (proportions).",
)
@click.option("--expected", "expected_col", default=None, help="Expected count E (ratios).")
@click.option(
    "--denominator",
    "denominator_col",
    default=None,
    help="Denominator n (proportions; required with --type proportion).",
)
@click.option(
    "--type",
    "data_type",
    type=click.Choice(["ratio", "proportion"]),
    default="ratio",
    show_default=True,
)
@click.option(
    "--method",
    type=click.Choice(["random-effects", "shmi", "cqc", "spiegelhalter"]),
    default=None,
    help="Overdispersion method [default: random-effects, the calibrated one; shmi, cqc and "
    "spiegelhalter are the published variants].",
)
@click.option(
    "--trim",
    type=click.FloatRange(0.0, 0.5, max_open=True),
    default=0.1,
    show_default=True,
    help="SHMI truncation / winsorising fraction (published methods).",
)
@click.option("--aggregate", is_flag=True, help="Sum rows per unit first.")
@click.option(
    "--svg",
    "svg_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the funnel plot as an SVG file.",
)
def funnel_command(  # noqa: PLR0917 - click passes options as arguments
    file: Path,
    unit_col: str,
    observed_col: str,
    expected_col: str | None,
    denominator_col: str | None,
    data_type: str,
    method: str | None,
    trim: float,
    aggregate: bool,
    svg_path: Path | None,
) -> None:
    """Funnel limits, overdispersion (phi, tau2) and outlier flags per unit, as JSON."""
    from qicollab.stats.funnel import aggregate_units, funnel_analysis  # noqa: PLC0415

    if data_type == "proportion":
        if denominator_col is None:
            msg = "--denominator is required with --type proportion"
            raise click.UsageError(msg)
        precision_col = denominator_col
    else:
        if expected_col is None:
            msg = "--expected is required with --type ratio"
            raise click.UsageError(msg)
        precision_col = expected_col
    if method == "shmi" and data_type == "proportion":
        msg = "--method shmi is for ratios; use cqc or spiegelhalter for proportions"
        raise click.UsageError(msg)

    table = read_csv(file)
    table.require(unit_col, observed_col, precision_col)
    units = _units(table, unit_col)
    observed = table.numeric(observed_col, non_negative=True)
    precision = table.numeric(precision_col, non_negative=True)
    if data_type == "proportion":
        table.check_not_above(observed_col, precision_col, observed, precision)
    if aggregate:
        labels, observed, precision = aggregate_units(units.to_numpy(), observed, precision)
    else:
        _check_unique(table, units, unit_col)
        labels = units.to_numpy(dtype=object)
    try:
        result = funnel_analysis(
            observed,
            precision,
            units=labels,
            data_type=data_type,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            trim=trim,
        )
    except ValueError as error:
        raise click.ClickException(f"{file}: {error}") from error

    key = "expected" if data_type == "ratio" else "denominator"
    units_out = [
        {
            "unit": row.unit,
            "observed": row.observed,
            key: row.precision,
            "value": row.value,
            "z": row.z,
            "z_adjusted": row.z_adjusted,
            "limits": {"95": [row.lower95, row.upper95], "99.8": [row.lower998, row.upper998]},
            "adjusted_limits": {
                "95": [row.adjusted_lower95, row.adjusted_upper95],
                "99.8": [row.adjusted_lower998, row.adjusted_upper998],
            },
            "outlier": {
                "95": row.outlier95,
                "99.8": row.outlier998,
                "adjusted_95": row.adjusted_outlier95,
                "adjusted_99.8": row.adjusted_outlier998,
            },
            "used_in_dispersion": row.used_in_dispersion,
        }
        for row in result.rows
    ]
    if svg_path is not None:
        from qicollab.reporting.charts.funnel import render_funnel_svg  # noqa: PLC0415

        svg = render_funnel_svg(result, title=f"Funnel plot: {file.name}")
        try:
            svg_path.write_text(svg, encoding="utf-8")
        except OSError as error:
            msg = f"{svg_path}: cannot write the SVG ({error.strerror})"
            raise click.ClickException(msg) from error
    _emit(
        {
            "file": str(file),
            "type": data_type,
            "method": result.method,
            "adjustment": result.adjustment,
            "trim": result.trim,
            "target": result.target,
            "phi": result.phi,
            "tau2": result.tau2,
            "n_used": result.n_used,
            "overdispersion_p": result.overdispersion_pvalue,
            "fallback": result.fallback,
            "note": result.note,
            "units": units_out,
        }
    )


# --- risk -------------------------------------------------------------------------------------


@analyze.command("risk")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--unit", "unit_col", required=True, help="Column identifying the unit.")
@click.option("--outcome", "outcome_col", required=True, help="Outcome column.")
@click.option("--covariates", required=True, help="Comma-separated covariate columns.")
@click.option(
    "--family",
    type=click.Choice(["binomial", "poisson", "negbin", "gaussian"]),
    default="binomial",
    show_default=True,
)
@click.option(
    "--categorical",
    default=None,
    help="Comma-separated covariates to treat as categorical (first level sorted is "
    "the reference); they may be listed in --covariates or only here.",
)
def risk_command(  # noqa: PLR0917 - click passes options as arguments
    file: Path,
    unit_col: str,
    outcome_col: str,
    covariates: str,
    family: str,
    categorical: str | None,
) -> None:
    """Fit a risk model; print coefficients, diagnostics and O/E per unit as JSON.

    Numeric covariates whose values are all 0/1 enter as binary indicators. O/E intervals use
    PHE's rule (exact Poisson below 10 events, Byar otherwise); the risk-adjusted rate is O/E x
    the collaborative's crude rate. ``shrunk_oe`` pulls each unit's O/E towards 1 by its
    reliability, with a model that fits the outcome: binary outcomes a random-intercept
    logistic model (CMS-style predicted/expected), counts gamma-Poisson empirical Bayes,
    continuous outcomes normal-normal empirical Bayes of log O/E; the top-level ``shrinkage``
    names the method and the between-unit SD.
    """
    from qicollab.stats.risk_models import (  # noqa: PLC0415
        Covariate,
        RiskModelError,
        RiskModelSpec,
        fit_risk_model,
    )
    from qicollab.stats.standardisation import ratio_estimates  # noqa: PLC0415

    categorical_cols = _split(categorical)
    covariate_cols = _split(covariates)
    covariate_cols += [c for c in categorical_cols if c not in covariate_cols]
    if not covariate_cols:
        msg = "--covariates needs at least one column"
        raise click.UsageError(msg)
    table = read_csv(file)
    table.require(unit_col, outcome_col, *covariate_cols)
    units = _units(table, unit_col)
    count_family = family in ("poisson", "negbin")
    outcome = table.numeric(outcome_col, non_negative=count_family, integer=count_family)
    if family == "binomial":
        bad = np.flatnonzero(~np.isin(outcome, (0.0, 1.0)))
        if bad.size:
            row = int(bad[0])
            msg = f"{table.where(row, outcome_col)}: {outcome[row]:g} is not 0 or 1"
            raise CsvError(msg)
    data: dict[str, Any] = {outcome_col: outcome}
    specs = []
    for name in covariate_cols:
        if name in categorical_cols:
            data[name] = table.text(name).to_numpy(dtype=object)
            specs.append(Covariate(name, "categorical"))
        else:
            values = table.numeric(name)
            data[name] = values
            kind = "binary" if np.isin(values, (0.0, 1.0)).all() else "numeric"
            specs.append(Covariate(name, kind))  # type: ignore[arg-type]
    frame = pd.DataFrame(data)
    spec = RiskModelSpec(outcome_col, family, tuple(specs))  # type: ignore[arg-type]
    try:
        fit = fit_risk_model(frame, spec)
    except RiskModelError as error:
        msg = f"{file}: cannot fit the risk model: {error}"
        raise click.ClickException(msg) from error

    grouped = (
        pd.DataFrame({"unit": units.to_numpy(), "y": outcome, "e": fit.fitted})
        .groupby("unit", sort=False)
        .agg(n=("y", "size"), o=("y", "sum"), e=("e", "sum"))
    )
    reference_rate = float(outcome.mean())
    estimates = ratio_estimates(
        grouped.index.to_numpy(dtype=object),
        grouped["o"].to_numpy(float),
        grouped["e"].to_numpy(float),
        n=grouped["n"].to_numpy(float),
        reference_rate=reference_rate,
    )
    shrinkage, shrunk = _risk_shrinkage(frame, fit, units.to_numpy(), grouped, outcome)
    diagnostics = fit.diagnostics
    assert diagnostics is not None
    _emit(
        {
            "file": str(file),
            "family": fit.family,
            "method": fit.method,
            "n": fit.n,
            "events": fit.events,
            "dispersion": fit.dispersion,
            "ratio_name": fit.ratio_name,
            "coefficients": [
                {
                    "term": c.term,
                    "estimate": c.estimate,
                    "se": c.std_error,
                    "z": c.statistic,
                    "p": c.p_value,
                    "ci95": [c.ci_lower, c.ci_upper],
                    "ratio": c.ratio,
                    "ratio_ci95": None if c.ratio is None else [c.ratio_lower, c.ratio_upper],
                }
                for c in fit.coefficients
            ],
            "diagnostics": {
                "c_statistic": diagnostics.c_statistic,
                "c_statistic_ci95": diagnostics.c_statistic_ci,
                "c_statistic_method": diagnostics.c_statistic_method,
                "hosmer_lemeshow": diagnostics.hosmer_lemeshow,
                "hosmer_lemeshow_df": diagnostics.hosmer_lemeshow_df,
                "hosmer_lemeshow_p": diagnostics.hosmer_lemeshow_p,
                "brier_score": diagnostics.brier_score,
                "events_per_variable": diagnostics.events_per_variable,
                "log_likelihood": diagnostics.log_likelihood,
                "aic": diagnostics.aic,
                "observed_total": diagnostics.observed_total,
                "expected_total": diagnostics.expected_total,
                "calibration": [
                    {
                        "group": g.group,
                        "n": g.n,
                        "observed": g.observed,
                        "expected": g.expected,
                    }
                    for g in diagnostics.calibration
                ],
            },
            "reference_rate": reference_rate,
            "interval_rule": estimates.interval_rule,
            "units": [
                {
                    "unit": e.unit,
                    "n": e.n,
                    "observed": e.observed,
                    "expected": e.expected,
                    "oe": e.ratio,
                    "oe_ci95": [e.lower95, e.upper95],
                    "oe_ci998": [e.lower998, e.upper998],
                    "interval_method": e.interval_method,
                    "risk_adjusted_rate": e.rate,
                    "shrunk_oe": shrunk[e.unit][0],
                    "shrunk_oe_ci95": list(shrunk[e.unit][1:]),
                }
                for e in estimates.estimates
            ],
            "shrinkage": shrinkage,
        }
    )


def _risk_shrinkage(
    frame: pd.DataFrame,
    fit: Any,
    units: np.ndarray,
    grouped: pd.DataFrame,
    outcome: np.ndarray,
) -> tuple[dict[str, Any], dict[Any, tuple[float, float, float]]]:
    """Shrunk O/E per unit (with its 95% interval) by the model that fits the family."""
    from qicollab.stats import glmm, shrinkage  # noqa: PLC0415
    from qicollab.stats.risk_models import build_design  # noqa: PLC0415

    if fit.family == "binomial":
        result = glmm.random_intercept_logistic(
            outcome,
            units,
            design=build_design(frame, fit.spec),
            start=fit.params,
            terms=fit.terms,
        )
        about = {
            "method": result.method,
            "applied_to": "O/E as predicted/expected (CMS style)",
            "between_member_sd": result.sigma,
            "scale": "logit",
            "fixed_effects": result.fixed_effects,
            "coefficients": dict(zip(result.terms, result.coefficients, strict=True)),
            "log_likelihood": result.log_likelihood,
            "quadrature_points": result.quadrature_points,
            "converged": result.converged,
            "interval_method": result.interval_method,
        }
        return about, {u.unit: (u.ratio, u.lower, u.upper) for u in result.units}
    observed = grouped["o"].to_numpy(float)
    expected = grouped["e"].to_numpy(float)
    labels = grouped.index.to_numpy(dtype=object)
    if fit.family in ("poisson", "negbin"):
        gamma = shrinkage.gamma_poisson_shrinkage(observed, expected, units=labels)
        about = {
            "method": gamma.method,
            "applied_to": "O/E",
            "between_member_sd": gamma.prior_sd,
            "scale": "ratio",
            "overdispersed": gamma.overdispersed,
            "note": gamma.note,
        }
        return about, {e.unit: (e.shrunk, e.lower, e.upper) for e in gamma.estimates}
    # Continuous outcomes: log O/E with the model's residual variance.
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(observed / expected)
        se = np.sqrt(grouped["n"].to_numpy(float) * float(fit.dispersion or 0.0)) / observed
    normal = shrinkage.normal_normal_shrinkage(log_ratio, se, 0.0, units=labels)
    about = {
        "method": "normal-normal empirical Bayes of log O/E",
        "applied_to": "O/E",
        "between_member_sd": float(np.sqrt(normal.tau2)),
        "scale": "log ratio",
    }
    return about, {
        e.unit: (float(np.exp(e.shrunk)), float(np.exp(e.lower)), float(np.exp(e.upper)))
        for e in normal.estimates
    }


# --- abc --------------------------------------------------------------------------------------


@analyze.command("abc")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--unit", "unit_col", required=True, help="Column identifying the unit.")
@click.option("--numerator", "numerator_col", required=True, help="Numerator column (x).")
@click.option("--denominator", "denominator_col", required=True, help="Denominator column (n).")
@click.option("--lower-is-better", is_flag=True, help="Rank ascending (e.g. complication rates).")
def abc_command(
    file: Path, unit_col: str, numerator_col: str, denominator_col: str, lower_is_better: bool
) -> None:
    """Achievable Benchmark of Care (pared mean of the best units covering 10% of patients).

    Rows of the same unit are summed first.
    """
    from qicollab.stats.achievable import achievable_benchmark  # noqa: PLC0415

    table = read_csv(file)
    table.require(unit_col, numerator_col, denominator_col)
    units = _units(table, unit_col)
    x = table.numeric(numerator_col, non_negative=True)
    n = table.numeric(denominator_col, non_negative=True)
    table.check_not_above(numerator_col, denominator_col, x, n)
    summed = (
        pd.DataFrame({"unit": units.to_numpy(), "x": x, "n": n})
        .groupby("unit", sort=False)[["x", "n"]]
        .sum()
    )
    try:
        result = achievable_benchmark(
            summed.index.to_numpy(dtype=object),
            summed["x"].to_numpy(float),
            summed["n"].to_numpy(float),
            lower_is_better=lower_is_better,
        )
    except ValueError as error:
        raise click.ClickException(f"{file}: {error}") from error
    _emit(
        {
            "file": str(file),
            "method": result.method,
            "abc": result.abc,
            "overall": result.overall,
            "benchmark_units": list(result.benchmark_units),
            "fraction": result.fraction,
            "covered": result.covered,
            "lower_is_better": result.lower_is_better,
            "excluded": list(result.excluded),
            "units": [
                {
                    "unit": u.unit,
                    "numerator": u.numerator,
                    "denominator": u.denominator,
                    "rate": u.rate,
                    "afp": u.afp,
                    "rank": u.rank,
                    "in_benchmark": u.in_benchmark,
                    "distance": u.distance,
                    "gap": u.gap,
                    "reaches": u.reaches,
                }
                for u in result.units
            ],
        }
    )


__all__ = ["abc_command", "analyze", "funnel_command", "risk_command"]
