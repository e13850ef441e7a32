"""Shrinkage benchmark (issue 11, item 5): the random-intercept logistic model on 1,000,000 records.

    .venv/bin/python benchmarks/bench_shrinkage.py [--rows 1000000] [--members 500] [--runs 3]

The patients of the benchmark-run benchmark (``bench_benchmark_run.py``: 20 covariates, 24
design columns, a 5%-ish death rate, true between-member SD 0.3), in memory. Each run times, in
this process:

* **risk model**: ``stats.risk_models.fit_risk_model`` (what every patient-level measure pays);
* **random-intercept shrinkage**: design matrix + ``stats.glmm.random_intercept_logistic``
  with every coefficient re-estimated jointly with sigma (``design=``), and with the risk model's
  linear predictor as offset (``offset=``);
* **one measure, in memory**: ``benchmarking.compute.compute_measure`` + the members' charts,
  i.e. the whole run of one measure except reading the records from the database (which
  ``bench_benchmark_run.py`` times with a real database).

Prints medians over ``--runs`` (wall, and CPU seconds of this process) and the ratio of the
in-memory measure to the 20 s budget of the whole run for one measure (below 1.0 meets it), and
the share the shrinkage takes of it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_benchmark_run import ASA, YEAR, _patients, risk_model  # noqa: E402

from qicollab.benchmarking.charts import measure_charts  # noqa: E402
from qicollab.benchmarking.compute import compute_measure  # noqa: E402
from qicollab.benchmarking.inputs import MeasureInfo, PeriodInfo, RunInputs  # noqa: E402
from qicollab.benchmarking.loading import _finish_patients  # noqa: E402
from qicollab.benchmarking.settings import RunSettings  # noqa: E402
from qicollab.stats import risk_models  # noqa: E402
from qicollab.stats.glmm import random_intercept_logistic  # noqa: E402

BUDGET_SECONDS = 20.0


def _frame(rows: int, members: int) -> pd.DataFrame:
    """The records as ``loading.load_patients`` returns them."""
    data = _patients(np.random.default_rng(1), rows, members)
    frame = pd.DataFrame(
        {
            "member_id": data["member"] + 1,
            "period_id": 1,
            "event_year": YEAR,
            "event_month": np.random.default_rng(2).integers(1, 13, rows).astype(float),
            "sequence": np.arange(rows),
            "outcome": data["died"].astype(float),
            "age": data["age"],
            "bmi": data["bmi"],
            "creatinine": data["creatinine"],
            "albumin": data["albumin"],
            **{f"flag{i:02d}": data["flags"][:, i].astype(float) for i in range(15)},
            "asa": np.asarray(ASA, dtype=object)[data["asa"]],
        }
    )
    return _finish_patients(frame, risk_model())


def _model_frame(frame: pd.DataFrame) -> pd.DataFrame:
    spec = risk_model()
    out = frame[[c.name for c in spec.covariates]].copy()
    out[spec.outcome] = frame["outcome"].to_numpy()
    out["asa"] = out["asa"].astype(str)
    return out


def main() -> int:
    """Time the steps; print medians and the ratio to the budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    frame = _frame(args.rows, args.members)
    model_frame = _model_frame(frame)
    spec = risk_model()
    members = frame["member_id"].to_numpy()
    y = frame["outcome"].to_numpy()
    measure = MeasureInfo(
        id=1,
        code="MORT00",
        title="Risk-adjusted mortality",
        measure_type="ratio",
        level="patient",
        direction="decrease",
        target=None,
        minimum_volume=25,
        multiplier=100.0,
        risk_model=spec.to_json(),
    )
    member_ids = tuple(int(m) for m in np.unique(members))
    inputs = RunInputs(
        settings=RunSettings(),
        member_ids=member_ids,
        member_codes={m: f"M{m:04d}" for m in member_ids},
        peer_groups=(),
        periods={1: PeriodInfo(1, str(YEAR), "year", dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))},
    )
    print(
        f"{args.rows:,} records, {len(member_ids)} members, {int(y.sum()):,} events, "
        f"{args.runs} runs",
        flush=True,
    )
    times: dict[str, list[float]] = {"fit": [], "refit": [], "offset": [], "measure": []}
    cpu: dict[str, list[float]] = {key: [] for key in times}
    for run in range(args.runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        fit = risk_models.fit_risk_model(model_frame, spec)
        times["fit"].append(time.perf_counter() - started)
        cpu["fit"].append(time.process_time() - cpu_started)

        started, cpu_started = time.perf_counter(), time.process_time()
        design = risk_models.build_design(model_frame, fit.spec)
        joint = random_intercept_logistic(
            y, members, design=design, start=fit.params, terms=fit.terms
        )
        times["refit"].append(time.perf_counter() - started)
        cpu["refit"].append(time.process_time() - cpu_started)
        del design

        started, cpu_started = time.perf_counter(), time.process_time()
        eta = np.log(fit.fitted / (1.0 - fit.fitted))
        offset = random_intercept_logistic(y, members, offset=eta)
        times["offset"].append(time.perf_counter() - started)
        cpu["offset"].append(time.process_time() - cpu_started)

        started, cpu_started = time.perf_counter(), time.process_time()
        seconds: dict[str, float] = {}
        data = frame.copy()
        output = compute_measure(measure, inputs, data, seconds=seconds)
        measure_charts(measure, inputs, data, output)
        times["measure"].append(time.perf_counter() - started)
        cpu["measure"].append(time.process_time() - cpu_started)
        payload = output.summaries[0].get("payload", {}) if output.summaries else {}
        method = (payload.get("shrinkage") or {}).get("method")
        print(
            f"run {run + 1}: risk model {times['fit'][-1]:.2f} s, random intercept (refit) "
            f"{times['refit'][-1]:.2f} s [sigma {joint.sigma:.3f}, {joint.iterations} steps], "
            f"(offset) {times['offset'][-1]:.2f} s [sigma {offset.sigma:.3f}], one measure "
            f"{times['measure'][-1]:.2f} s { ({k: round(v, 2) for k, v in seconds.items()}) }; "
            f"its shrinkage: {method}",
            flush=True,
        )
    median = {key: statistics.median(values) for key, values in times.items()}
    median_cpu = {key: statistics.median(values) for key, values in cpu.items()}
    print(
        f"median risk model {median['fit']:.2f} s; random-intercept shrinkage "
        f"{median['refit']:.2f} s (coefficients re-estimated), {median['offset']:.2f} s (offset)"
    )
    print(
        f"one measure on {args.rows:,} records in memory (fit, O/E, shrinkage, funnel, ABC, "
        f"charts): median {median['measure']:.2f} s; budget {BUDGET_SECONDS:.0f} s for the whole "
        f"run, ratio {median['measure'] / BUDGET_SECONDS:.2f} (loading from the database comes "
        "on top: bench_benchmark_run.py)"
    )
    print(
        f"random-intercept shrinkage (refit) as a share of the budget: "
        f"{median['refit'] / BUDGET_SECONDS:.2f}"
    )
    print(
        "CPU seconds (process_time, steadier than wall time on a shared machine): risk model "
        f"{median_cpu['fit']:.2f}, shrinkage (refit) {median_cpu['refit']:.2f}, (offset) "
        f"{median_cpu['offset']:.2f}, one measure {median_cpu['measure']:.2f}; ratio to the "
        f"budget {median_cpu['measure'] / BUDGET_SECONDS:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
