"""How often each funnel method flags members, measured by seeded simulation.

Why: a member is harmed when it is flagged wrongly, so the platform states the false-alarm rate
and the power of the outlier rule it uses, and of the published variants a coordinator may pick
instead, in the methods appendix of reports. The figures come from :func:`simulate`, run by

    python -m qicollab.stats.calibration --replicates 20 --seed 20261205

whose output is stored below as :data:`CALIBRATION` (tests re-run a smaller simulation with
other seeds and check that it agrees).

Design (issue 11): each replicate is a collaborative of 1,000 members.

* ratios: E log-uniform on [0.5, 200], O ~ Poisson(theta E);
* proportions: n log-uniform on [5, 2000] (whole numbers), x ~ Binomial(n, p), p0 = 0.3.

Scenarios:

* ``"in-control"``: theta = 1 (p = p0) for everyone; the rate is the share of members flagged
  (either side), the false-alarm rate.
* ``"sd-0.2"``: real between-member variation that is not a signal: ln theta ~ N(-0.02, 0.2^2)
  (mean 1; for proportions logit p ~ N(logit p0, 0.2^2)); rate = share flagged.
* ``"rr3"``: as ``"sd-0.2"``, and 20 members with E >= 30 (n p0 >= 30) have their relative risk
  (odds for proportions) multiplied by 3; rate = share of those 20 flagged high: the power.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Scenario = Literal["in-control", "sd-0.2", "rr3"]
SCENARIOS: tuple[Scenario, ...] = ("in-control", "sd-0.2", "rr3")
MEMBERS = 1000
OUTLIERS = 20
BETWEEN_SD = 0.2
RELATIVE_RISK = 3.0
PROPORTION_TARGET = 0.3
COMMAND = "python -m qicollab.stats.calibration --replicates 20 --seed 20261205"


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """One simulated rate: the share of members flagged (or, for ``"rr3"``, of true outliers
    flagged high) by one method at one level, with its Monte Carlo standard error."""

    data_type: str
    method: str
    scenario: str
    level: float
    adjusted: bool
    rate: float
    se: float
    replicates: int

    def to_dict(self) -> dict[str, object]:
        """JSON-safe dictionary."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CalibrationRow:
        """Inverse of :meth:`to_dict`."""
        return cls(**{name: data[name] for name in cls.__slots__})  # type: ignore[arg-type]


def _methods(data_type: str) -> tuple[str, ...]:
    if data_type == "ratio":
        return ("random-effects", "shmi", "cqc", "spiegelhalter")
    return ("random-effects", "cqc", "spiegelhalter")


def _collaborative(
    rng: np.random.Generator, data_type: str, scenario: Scenario
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed, precision, mask of true outliers) for one simulated collaborative."""
    if data_type == "ratio":
        precision = np.exp(rng.uniform(math.log(0.5), math.log(200.0), MEMBERS))
        eligible = precision >= 30
    else:
        precision = np.round(np.exp(rng.uniform(math.log(5.0), math.log(2000.0), MEMBERS)))
        eligible = precision * PROPORTION_TARGET >= 30
    effect = np.zeros(MEMBERS)
    if scenario != "in-control":
        effect = rng.normal(
            -(BETWEEN_SD**2) / 2 if data_type == "ratio" else 0.0, BETWEEN_SD, MEMBERS
        )
    outliers = np.zeros(MEMBERS, dtype=bool)
    if scenario == "rr3":
        outliers[rng.choice(np.flatnonzero(eligible), OUTLIERS, replace=False)] = True
        effect = effect + np.where(outliers, math.log(RELATIVE_RISK), 0.0)
    if data_type == "ratio":
        observed = rng.poisson(precision * np.exp(effect)).astype(float)
    else:
        logit = math.log(PROPORTION_TARGET / (1 - PROPORTION_TARGET)) + effect
        observed = rng.binomial(precision.astype(np.int64), 1 / (1 + np.exp(-logit))).astype(float)
    return observed, precision, outliers


def simulate(
    data_type: str,
    scenario: Scenario,
    *,
    replicates: int,
    seed: int,
    methods: Sequence[str] | None = None,
) -> list[CalibrationRow]:
    """Flag rates of each method at 95% and 99.8%, unadjusted and adjusted (see module)."""
    from qicollab.stats.funnel import funnel_analysis  # noqa: PLC0415 - funnel imports us

    chosen = tuple(methods) if methods is not None else _methods(data_type)
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), data_type == "ratio"])
    counts: dict[tuple[str, float, bool], list[float]] = {}
    for _ in range(replicates):
        observed, precision, outliers = _collaborative(rng, data_type, scenario)
        target = PROPORTION_TARGET if data_type == "proportion" else None
        for method in chosen:
            result = funnel_analysis(
                observed,
                precision,
                data_type=data_type,  # type: ignore[arg-type]
                method=method,  # type: ignore[arg-type]
                target=target,
            )
            for level in (0.95, 0.998):
                for adjusted in (False, True):
                    flags = np.array(
                        [row.outlier(level, adjusted=adjusted) for row in result.rows], object
                    )
                    if scenario == "rr3":
                        rate = float(np.mean(flags[outliers] == "high"))
                    else:
                        rate = float(np.mean(flags != None))  # noqa: E711 - elementwise
                    counts.setdefault((method, level, adjusted), []).append(rate)
    rows = []
    for (method, level, adjusted), rates in counts.items():
        values = np.asarray(rates)
        se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
        rows.append(
            CalibrationRow(
                data_type, method, scenario, level, adjusted, float(values.mean()), se, replicates
            )
        )
    return rows


def lookup(
    data_type: str,
    method: str,
    scenario: str,
    level: float,
    *,
    adjusted: bool,
    table: Iterable[CalibrationRow] | None = None,
) -> CalibrationRow:
    """The stored row for one method, scenario, level and adjustment."""
    for row in CALIBRATION if table is None else table:
        if (row.data_type, row.method, row.scenario, row.level, row.adjusted) == (
            data_type,
            method,
            scenario,
            level,
            adjusted,
        ):
            return row
    msg = f"no calibration for {data_type} {method} {scenario} {level} adjusted={adjusted}"
    raise KeyError(msg)


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261205)
    args = parser.parse_args(argv)
    print("CALIBRATION: tuple[CalibrationRow, ...] = (")  # noqa: T201 - the script's output
    for data_type in ("ratio", "proportion"):
        for scenario in SCENARIOS:
            for row in simulate(data_type, scenario, replicates=args.replicates, seed=args.seed):
                print(  # noqa: T201
                    f"    CalibrationRow({row.data_type!r}, {row.method!r}, {row.scenario!r}, "
                    f"{row.level!r}, {row.adjusted!r}, {row.rate:.5f}, {row.se:.5f}, "
                    f"{row.replicates}),"
                )
    print(")")  # noqa: T201


#: Generated by COMMAND (see the module docstring); do not edit by hand.
CALIBRATION: tuple[CalibrationRow, ...] = (
    CalibrationRow("ratio", "random-effects", "in-control", 0.95, False, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "random-effects", "in-control", 0.95, True, 0.03260, 0.00106, 20),
    CalibrationRow("ratio", "random-effects", "in-control", 0.998, False, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "random-effects", "in-control", 0.998, True, 0.00125, 0.00022, 20),
    CalibrationRow("ratio", "shmi", "in-control", 0.95, False, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "shmi", "in-control", 0.95, True, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "shmi", "in-control", 0.998, False, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "shmi", "in-control", 0.998, True, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "cqc", "in-control", 0.95, False, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "cqc", "in-control", 0.95, True, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "cqc", "in-control", 0.998, False, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "cqc", "in-control", 0.998, True, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "spiegelhalter", "in-control", 0.95, False, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "spiegelhalter", "in-control", 0.95, True, 0.03375, 0.00124, 20),
    CalibrationRow("ratio", "spiegelhalter", "in-control", 0.998, False, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "spiegelhalter", "in-control", 0.998, True, 0.00135, 0.00024, 20),
    CalibrationRow("ratio", "random-effects", "sd-0.2", 0.95, False, 0.13880, 0.00198, 20),
    CalibrationRow("ratio", "random-effects", "sd-0.2", 0.95, True, 0.03225, 0.00081, 20),
    CalibrationRow("ratio", "random-effects", "sd-0.2", 0.998, False, 0.04755, 0.00095, 20),
    CalibrationRow("ratio", "random-effects", "sd-0.2", 0.998, True, 0.00175, 0.00032, 20),
    CalibrationRow("ratio", "shmi", "sd-0.2", 0.95, False, 0.13880, 0.00198, 20),
    CalibrationRow("ratio", "shmi", "sd-0.2", 0.95, True, 0.13880, 0.00198, 20),
    CalibrationRow("ratio", "shmi", "sd-0.2", 0.998, False, 0.04755, 0.00095, 20),
    CalibrationRow("ratio", "shmi", "sd-0.2", 0.998, True, 0.04755, 0.00095, 20),
    CalibrationRow("ratio", "cqc", "sd-0.2", 0.95, False, 0.13880, 0.00198, 20),
    CalibrationRow("ratio", "cqc", "sd-0.2", 0.95, True, 0.07635, 0.00134, 20),
    CalibrationRow("ratio", "cqc", "sd-0.2", 0.998, False, 0.04755, 0.00095, 20),
    CalibrationRow("ratio", "cqc", "sd-0.2", 0.998, True, 0.00975, 0.00083, 20),
    CalibrationRow("ratio", "spiegelhalter", "sd-0.2", 0.95, False, 0.13880, 0.00198, 20),
    CalibrationRow("ratio", "spiegelhalter", "sd-0.2", 0.95, True, 0.09765, 0.00143, 20),
    CalibrationRow("ratio", "spiegelhalter", "sd-0.2", 0.998, False, 0.04755, 0.00095, 20),
    CalibrationRow("ratio", "spiegelhalter", "sd-0.2", 0.998, True, 0.02505, 0.00103, 20),
    CalibrationRow("ratio", "random-effects", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "random-effects", "rr3", 0.95, True, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "random-effects", "rr3", 0.998, False, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "random-effects", "rr3", 0.998, True, 0.97500, 0.00851, 20),
    CalibrationRow("ratio", "shmi", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "shmi", "rr3", 0.95, True, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "shmi", "rr3", 0.998, False, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "shmi", "rr3", 0.998, True, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "cqc", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "cqc", "rr3", 0.95, True, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "cqc", "rr3", 0.998, False, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "cqc", "rr3", 0.998, True, 0.99500, 0.00344, 20),
    CalibrationRow("ratio", "spiegelhalter", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "spiegelhalter", "rr3", 0.95, True, 1.00000, 0.00000, 20),
    CalibrationRow("ratio", "spiegelhalter", "rr3", 0.998, False, 0.99750, 0.00250, 20),
    CalibrationRow("ratio", "spiegelhalter", "rr3", 0.998, True, 0.99500, 0.00344, 20),
    CalibrationRow("proportion", "random-effects", "in-control", 0.95, False, 0.03720, 0.00108, 20),
    CalibrationRow("proportion", "random-effects", "in-control", 0.95, True, 0.03560, 0.00095, 20),
    CalibrationRow(
        "proportion", "random-effects", "in-control", 0.998, False, 0.00135, 0.00027, 20
    ),
    CalibrationRow("proportion", "random-effects", "in-control", 0.998, True, 0.00115, 0.00022, 20),
    CalibrationRow("proportion", "cqc", "in-control", 0.95, False, 0.03720, 0.00108, 20),
    CalibrationRow("proportion", "cqc", "in-control", 0.95, True, 0.03720, 0.00108, 20),
    CalibrationRow("proportion", "cqc", "in-control", 0.998, False, 0.00135, 0.00027, 20),
    CalibrationRow("proportion", "cqc", "in-control", 0.998, True, 0.00135, 0.00027, 20),
    CalibrationRow("proportion", "spiegelhalter", "in-control", 0.95, False, 0.03720, 0.00108, 20),
    CalibrationRow("proportion", "spiegelhalter", "in-control", 0.95, True, 0.03720, 0.00108, 20),
    CalibrationRow("proportion", "spiegelhalter", "in-control", 0.998, False, 0.00135, 0.00027, 20),
    CalibrationRow("proportion", "spiegelhalter", "in-control", 0.998, True, 0.00135, 0.00027, 20),
    CalibrationRow("proportion", "random-effects", "sd-0.2", 0.95, False, 0.20910, 0.00218, 20),
    CalibrationRow("proportion", "random-effects", "sd-0.2", 0.95, True, 0.03790, 0.00109, 20),
    CalibrationRow("proportion", "random-effects", "sd-0.2", 0.998, False, 0.09290, 0.00148, 20),
    CalibrationRow("proportion", "random-effects", "sd-0.2", 0.998, True, 0.00180, 0.00029, 20),
    CalibrationRow("proportion", "cqc", "sd-0.2", 0.95, False, 0.20910, 0.00218, 20),
    CalibrationRow("proportion", "cqc", "sd-0.2", 0.95, True, 0.11140, 0.00166, 20),
    CalibrationRow("proportion", "cqc", "sd-0.2", 0.998, False, 0.09290, 0.00148, 20),
    CalibrationRow("proportion", "cqc", "sd-0.2", 0.998, True, 0.02110, 0.00127, 20),
    CalibrationRow("proportion", "spiegelhalter", "sd-0.2", 0.95, False, 0.20910, 0.00218, 20),
    CalibrationRow("proportion", "spiegelhalter", "sd-0.2", 0.95, True, 0.13025, 0.00128, 20),
    CalibrationRow("proportion", "spiegelhalter", "sd-0.2", 0.998, False, 0.09290, 0.00148, 20),
    CalibrationRow("proportion", "spiegelhalter", "sd-0.2", 0.998, True, 0.04630, 0.00161, 20),
    CalibrationRow("proportion", "random-effects", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("proportion", "random-effects", "rr3", 0.95, True, 0.99250, 0.00410, 20),
    CalibrationRow("proportion", "random-effects", "rr3", 0.998, False, 0.99500, 0.00344, 20),
    CalibrationRow("proportion", "random-effects", "rr3", 0.998, True, 0.95250, 0.00923, 20),
    CalibrationRow("proportion", "cqc", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("proportion", "cqc", "rr3", 0.95, True, 1.00000, 0.00000, 20),
    CalibrationRow("proportion", "cqc", "rr3", 0.998, False, 0.99500, 0.00344, 20),
    CalibrationRow("proportion", "cqc", "rr3", 0.998, True, 0.98750, 0.00497, 20),
    CalibrationRow("proportion", "spiegelhalter", "rr3", 0.95, False, 1.00000, 0.00000, 20),
    CalibrationRow("proportion", "spiegelhalter", "rr3", 0.95, True, 0.99500, 0.00344, 20),
    CalibrationRow("proportion", "spiegelhalter", "rr3", 0.998, False, 0.99500, 0.00344, 20),
    CalibrationRow("proportion", "spiegelhalter", "rr3", 0.998, True, 0.97500, 0.00574, 20),
)

if __name__ == "__main__":
    _main()
