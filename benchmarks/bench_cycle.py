"""A whole 1,000-hospital cycle against the 15-minute target (issue 16, item 6).

    python benchmarks/bench_cycle.py [--members 1000] [--measures 20] [--rows 2000000]
        [--workers 2] [--workdir DIR]

After the data are in (built once like bench_benchmark_run.py's twenty-measure collaborative:
``--measures`` patient-level risk-adjusted measures with ``--rows`` records each across
``--members`` hospitals, in SQLite, kept in ``--workdir`` for the next time), times the stages
a coordinator waits for at the end of a cycle, each with ``--workers`` processes:

1. the benchmark run (risk models, O/E, funnels, shrinkage, control charts, the store);
2. every member's benchmark report;
3. the collaborative report and the blinded summary.

Prints each stage's wall time, their sum against the 15-minute target (ratio below 1.0 meets
it), and the member reports' wall and worker CPU seconds per report. Reports go through
ReportRenderer's pool of long-lived workers, not yet through the per-task huey dispatch (issue 16
items 1/3), which landed while this was written. The machine is shared: wall times are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_benchmark_run import CYCLE, build  # noqa: E402

from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: E402
from qicollab.reporting.models import ReportKind  # noqa: E402
from qicollab.reporting.rendering import ReportRenderer  # noqa: E402

TARGET_SECONDS = 15 * 60


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _progress(label: str, every: int):
    started = time.perf_counter()

    def report(done: int, total: int, _message: str) -> None:
        if done and (done % every == 0 or done == total):
            elapsed = time.perf_counter() - started
            print(f"  {label}: {done}/{total} in {elapsed:.0f} s", flush=True)

    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--measures", type=int, default=20)
    parser.add_argument("--rows", type=int, default=2_000_000, help="records per measure")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-cycle")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"cycle-{args.measures}-{args.rows}-{args.members}.sqlite"
    if not source.exists():
        started = time.perf_counter()
        build(
            f"sqlite:///{source}.tmp", rows=args.rows, members=args.members, measures=args.measures
        )
        Path(f"{source}.tmp").rename(source)
        print(f"built the collaborative in {time.perf_counter() - started:.0f} s (not timed)")

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        database = Path(scratch) / "cycle.sqlite"
        shutil.copyfile(source, database)
        settings = {
            "sqlalchemy.url": f"sqlite:///{database}",
            "qicollab.storage": str(Path(scratch) / "storage"),
            "qicollab.secret": "bench",
        }
        print(
            f"{args.members} hospitals, {args.measures} measures x {args.rows:,} records, "
            f"{args.workers} worker processes, SQLite; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} at the start (a shared machine: wall times are noisy)",
            flush=True,
        )
        stages = run_stages(settings, args.workers, args.members)

    total = sum(seconds for seconds, _ in stages.values())
    print(f"\n{'stage':<40}{'wall s':>9}")
    for name, (seconds, note) in stages.items():
        print(f"{name:<40}{seconds:>9.1f}  {note}")
    print(
        f"{'whole cycle':<40}{total:>9.1f}  target {TARGET_SECONDS} s (15 min): ratio "
        f"{total / TARGET_SECONDS:.2f} ({'met' if total <= TARGET_SECONDS else 'not met'})"
    )


def run_stages(settings: dict, workers: int, members: int) -> dict[str, tuple[float, str]]:
    """Run and time each stage on the database in ``settings``."""
    from qicollab.benchmarking.services import BenchmarkRunService  # noqa: PLC0415

    engine = create_engine_from_settings(settings)
    factory = get_session_factory(engine)
    stages: dict[str, tuple[float, str]] = {}

    started = time.perf_counter()
    service = BenchmarkRunService(factory, workers=workers)
    run = service.create(cycle_code=CYCLE, settings={"charts": True})
    service.execute(run.id)
    stages["benchmark run"] = (time.perf_counter() - started, "")
    print(f"  benchmark run {run.id}: {stages['benchmark run'][0]:.0f} s", flush=True)

    renderer = ReportRenderer(factory, settings, workers=workers)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    summary = renderer.render_run(
        run.id,
        kinds=[ReportKind.MEMBER],
        progress=_progress("member reports", max(10, members // 20)),
    )
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    count = len(summary.rendered)
    if summary.failed or not count:
        raise SystemExit(f"member reports failed: {summary.to_json()}")
    stages[f"{count} member reports"] = (
        wall,
        f"{wall / count:.2f} s/report wall, {cpu / count:.2f} s/report worker CPU",
    )

    started = time.perf_counter()
    summary = renderer.render_run(
        run.id, kinds=[ReportKind.COLLABORATIVE, ReportKind.BLINDED_SUMMARY]
    )
    if summary.failed:
        raise SystemExit(f"collaborative reports failed: {summary.to_json()}")
    stages["collaborative report + blinded summary"] = (time.perf_counter() - started, "")
    engine.dispose()
    return stages


if __name__ == "__main__":
    main()
