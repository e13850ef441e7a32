"""Risk-model benchmark: our statsmodels-based fit against a plain numpy IRLS floor (issue 3).

    .venv/bin/python benchmarks/bench_risk_model.py [--rows 1000000] [--members 500] [--runs 3]

Generates patient records with 20 design columns (intercept, 4 continuous covariates, sex,
emergency, 9 comorbidity flags, a 5-level ASA grade -> 4 dummies) across ``--members`` members,
30-day mortality ~9% with a member random intercept (SD 0.35 on the logit scale), as in
design/PERFORMANCE.md section 1. After one untimed warm-up of each, ``--runs`` times,
interleaved in the same loop with the order rotated each run:

* numpy IRLS (the floor): Newton from beta = 0 on the prebuilt float64 design, X'WX by BLAS,
  Cholesky solve, stop when max|step| < 1e-8, standard errors from the inverse, fitted p;
* ``qicollab.stats.risk_models.fit_risk_model`` on the DataFrame with diagnostics off
  (design matrix built from the frame, EPV rule, separation check, warm-started
  statsmodels ``Logit`` with standard errors, fitted p) -- the like-for-like model fit;
* the same with diagnostics on (DeLong c-statistic, Hosmer-Lemeshow, calibration, Brier).

Prints the medians of wall-clock and of process CPU time (the CPU ratio is steadier on a
shared machine), the ratio of our fit to the floor (target: within 2x), the largest
coefficient difference between the two, then one pass of the downstream stages (O/E per
member, gamma-Poisson EB, funnel, ABC) and the peak memory (``resource`` max RSS; tracemalloc
peaks of one extra fit of each kind).
"""

from __future__ import annotations

import os

# One BLAS thread: a single fit gains nothing from the second core (PERFORMANCE.md section 1),
# and on a shared, loaded machine OpenBLAS threads spinning on busy cores made the same fit
# 4-5x slower and very noisy. Set OPENBLAS_NUM_THREADS yourself to override.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import gc
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qicollab.stats.achievable import achievable_benchmark
from qicollab.stats.funnel import funnel_analysis
from qicollab.stats.risk_models import Covariate, RiskModelSpec, build_design, fit_risk_model
from qicollab.stats.shrinkage import gamma_poisson_shrinkage
from qicollab.stats.standardisation import indirect_standardisation

FLAGS = [f"comorb{j}" for j in range(1, 10)]
SPEC = RiskModelSpec(
    "died",
    "binomial",
    (
        Covariate("age"),
        Covariate("bmi"),
        Covariate("creatinine"),
        Covariate("albumin"),
        Covariate("sex", "binary"),
        Covariate("emergency", "binary"),
        *(Covariate(name, "binary") for name in FLAGS),
        Covariate("asa", "categorical", ("1", "2", "3", "4", "5"), "1"),
    ),
)


def generate(rows: int, members: int, seed: int = 1) -> pd.DataFrame:
    """Synthetic patient records with a known logistic model and member effects."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "member": rng.integers(0, members, rows),
            "age": rng.normal(68, 12, rows),
            "bmi": rng.normal(27, 5, rows),
            "creatinine": rng.lognormal(0, 0.35, rows),
            "albumin": rng.normal(38, 5, rows),
            "sex": rng.integers(0, 2, rows),
            "emergency": rng.binomial(1, 0.25, rows),
        }
    )
    prevalence = np.linspace(0.04, 0.30, len(FLAGS))
    for name, p in zip(FLAGS, prevalence, strict=True):
        frame[name] = rng.binomial(1, p, rows)
    frame["asa"] = rng.choice(["1", "2", "3", "4", "5"], rows, p=[0.1, 0.35, 0.35, 0.15, 0.05])
    member_effect = rng.normal(0, 0.35, members)
    eta = (
        -4.1
        + 0.035 * (frame["age"] - 68)
        + 0.01 * (frame["bmi"] - 27)
        + 0.4 * np.log(frame["creatinine"])
        - 0.03 * (frame["albumin"] - 38)
        + 0.15 * frame["sex"]
        + 0.7 * frame["emergency"]
        + frame[FLAGS].to_numpy() @ np.linspace(0.1, 0.5, len(FLAGS))
        + frame["asa"].map({"1": 0.0, "2": 0.3, "3": 0.7, "4": 1.2, "5": 1.8}).to_numpy()
        + member_effect[frame["member"].to_numpy()]
    )
    frame["died"] = rng.binomial(1, 1 / (1 + np.exp(-eta.to_numpy())))
    return frame


def numpy_irls(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Newton-Raphson / IRLS from zero: beta, standard errors, fitted p, iterations."""
    beta = np.zeros(x.shape[1])
    iteration = 0
    for iteration in range(1, 51):  # noqa: B007 - the count is returned
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        w = p * (1.0 - p)
        hessian = (x.T * w) @ x
        factor = cho_factor(hessian)
        step = cho_solve(factor, x.T @ (y - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    p = 1.0 / (1.0 + np.exp(-(x @ beta)))
    hessian = (x.T * (p * (1.0 - p))) @ x
    se = np.sqrt(np.diag(cho_solve(cho_factor(hessian), np.eye(x.shape[1]))))
    return beta, se, p, iteration


CPU: dict[str, list[float]] = {}


def timed(function: Callable[[], object], label: str | None = None) -> tuple[float, object]:
    """Wall-clock seconds (and, under ``label``, CPU seconds of this process) of one call."""
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    value = function()
    elapsed = time.perf_counter() - start
    if label is not None:
        CPU.setdefault(label, []).append(time.process_time() - cpu)
    return elapsed, value


def traced_peak_mb(function: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"BLAS threads: {os.environ['OPENBLAS_NUM_THREADS']}")

    started = time.perf_counter()
    frame = generate(args.rows, args.members)
    x = build_design(frame, SPEC)
    y = frame["died"].to_numpy(float)
    print(
        f"data: {args.rows:,} rows x {x.shape[1]} design columns, {args.members} members, "
        f"{int(y.sum()):,} deaths ({y.mean():.2%}); generated in "
        f"{time.perf_counter() - started:.1f} s; design {x.nbytes / 2**20:.0f} MB"
    )

    methods: dict[str, Callable[[], object]] = {
        "numpy IRLS": lambda: numpy_irls(x, y),
        "ours (fit)": lambda: fit_risk_model(frame, SPEC, diagnostics=False),
        "ours (+diag)": lambda: fit_risk_model(frame, SPEC),
    }
    for method in methods.values():  # warm-up: imports, allocator, BLAS buffers
        method()
    times: dict[str, list[float]] = {name: [] for name in methods}
    results: dict[str, object] = {}
    names = list(methods)
    for run in range(1, args.runs + 1):
        # rotate the order, so no method always runs first (the first fit after another one
        # pays for fresh memory pages: up to 0.4 s at 1M rows on this machine)
        shift = (run - 1) % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, results[name] = timed(methods[name], name)
            times[name].append(seconds)
        print(f"run {run}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    reference = results["numpy IRLS"]
    fit = results["ours (fit)"]
    assert reference is not None
    assert fit is not None
    beta, se, _, iterations = reference  # type: ignore[misc]
    floor = statistics.median(times["numpy IRLS"])
    cpu_floor = statistics.median(CPU["numpy IRLS"])
    print(f"\nmedian of {args.runs} interleaved runs (wall clock; CPU time of the process)")
    for name, values in times.items():
        median = statistics.median(values)
        cpu = statistics.median(CPU[name])
        print(
            f"  {name:<14} {median:6.2f} s   ratio {median / floor:4.2f}   "
            f"CPU {cpu:6.2f} s   ratio {cpu / cpu_floor:4.2f}"
        )
    seconds, _ = timed(lambda: build_design(frame, SPEC))
    print(f"  (building the design matrix from the frame, included in ours: {seconds:.2f} s)")
    print(
        f"  numpy IRLS iterations {iterations}; ours: {fit.method} "  # type: ignore[union-attr]
        f"({fit.iterations} full-data Newton iterations)"  # type: ignore[union-attr]
    )
    print(
        f"  max |beta - beta_numpy| = {np.max(np.abs(fit.params - beta)):.2e}, "  # type: ignore[union-attr]
        f"max |se - se_numpy| = "
        f"{np.max(np.abs(np.array([c.std_error for c in fit.coefficients]) - se)):.2e}"  # type: ignore[union-attr]
    )

    print("\ndownstream stages (one pass)")
    frame["expected"] = fit.fitted  # type: ignore[union-attr]
    seconds, oe = timed(
        lambda: indirect_standardisation(frame, unit="member", outcome="died", expected="expected")
    )
    print(f"  O/E per member (exact/Byar at 95 and 99.8%): {seconds * 1000:7.1f} ms")
    table = oe.to_frame()  # type: ignore[union-attr]
    seconds, eb = timed(lambda: gamma_poisson_shrinkage(table["observed"], table["expected"]))
    print(
        f"  gamma-Poisson EB:                            {seconds * 1000:7.1f} ms"
        f"   (shape a = {eb.shape:.2f})"  # type: ignore[union-attr]
    )
    seconds, funnel = timed(
        lambda: funnel_analysis(table["observed"], table["expected"], units=table["unit"])
    )
    print(
        f"  funnel (SHMI, 500 members):                  {seconds * 1000:7.1f} ms"
        f"   (phi = {funnel.phi:.2f})"  # type: ignore[union-attr]
    )
    survived = frame.groupby("member")["died"].agg(["size", "sum"])
    seconds, abc = timed(
        lambda: achievable_benchmark(
            survived.index, survived["size"] - survived["sum"], survived["size"]
        )
    )
    print(
        f"  ABC (30-day survival):                       {seconds * 1000:7.1f} ms"
        f"   (ABC = {abc.abc:.4f})"  # type: ignore[union-attr]
    )

    print("\nmemory")
    print(f"  peak RSS of the process so far: {max_rss_mb():,.0f} MB")
    numpy_peak = traced_peak_mb(lambda: numpy_irls(x, y))
    ours_peak = traced_peak_mb(lambda: fit_risk_model(frame, SPEC, diagnostics=False))
    print(
        f"  tracemalloc peak during one fit: numpy IRLS {numpy_peak:,.0f} MB, "
        f"ours {ours_peak:,.0f} MB (includes building the {x.nbytes / 2**20:.0f} MB design)"
    )


if __name__ == "__main__":
    main()
