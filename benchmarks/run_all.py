"""Every speed benchmark in one command, each in its own process, then a summary.

    .venv/bin/python benchmarks/run_all.py [--only spc,reports] [--skip portal_load]

Each benchmark prints its own medians and ratios to the targets (below 1.0 meets a target);
this runner streams their output and ends with one line per benchmark (exit status, which is
non-zero when it could not run, and wall-clock time). Run it on a quiet machine: the benchmarks
measure wall-clock time, and the ingest and benchmark-run ones start a throwaway PostgreSQL
cluster.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> what it measures (the issue and item that set its targets).
BENCHMARKS = {
    "risk_model": "risk-model fit vs a numpy IRLS floor (issue 3, item 10)",
    "benchmark_run": "a whole benchmark run, 1 and 20 measures (issue 3, item 10)",
    "spc": "control charts for 1,000 members x 20 measures, 100 SVGs (issue 4, item 10)",
    "ingest": "validate and commit 100k rows on SQLite, 1M on PostgreSQL (issue 5, item 12)",
    "portal_load": "50 simulated members on the portal (issue 5, item 12)",
    "reports": "one report warm, 1,000 reports, the results page (issue 6, item 10)",
    "identifiers": "the de-identification screen on planted and clean corpora (issue 14, item 2)",
    "shrinkage": "random-intercept logistic shrinkage on 1M records (issue 11, item 5)",
    "reports_workers": "1,000 member reports, 1 worker vs 2 side by side (issue 16, item 6)",
    "cycle": "a whole 1,000-hospital cycle: run, 1,000 reports, summaries (issue 16, item 6)",
}


def _names(raw: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return names


def main() -> int:
    """Run the chosen benchmarks one after another; non-zero when any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated names to leave out")
    args = parser.parse_args()
    chosen = _names(args.only, parser) or list(BENCHMARKS)
    skipped = set(_names(args.skip, parser))
    outcome: list[tuple[str, int, float]] = []
    for name in (n for n in chosen if n not in skipped):
        print(f"\n=== {name}: {BENCHMARKS[name]}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / f"bench_{name}.py")])
        outcome.append((name, code, time.monotonic() - started))
    print("\n=== summary (the ratios to the targets are printed above)")
    for name, code, seconds in outcome:
        print(f"{name:<14} exit {code}  {seconds:7.1f} s")
    return 0 if all(code == 0 for _, code, _ in outcome) else 1


if __name__ == "__main__":
    sys.exit(main())
