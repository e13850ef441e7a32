"""A whole 1,000-hospital cycle against the 15-minute target (issue 16, item 6).

    python benchmarks/bench_cycle.py [--members 1000] [--measures 20] [--rows 2000000]
        [--workers 2] [--reports N] [--floor] [--workdir DIR]

After the data are in (built once like bench_benchmark_run.py's twenty-measure collaborative:
``--measures`` patient-level risk-adjusted measures with ``--rows`` records each across
``--members`` hospitals, in SQLite, kept in ``--workdir`` and copied for each run; a database
kept by ``bench_benchmark_run.py --workdir`` with the same sizes is reused instead of building
again), starts ``--workers`` real ``qicollab worker`` processes and times, from each job's
enqueue to its completion, the stages a coordinator waits for at the end of a cycle, each a
job fanned out into tasks that the workers take from the queue:

1. the benchmark run (one task per measure; the run flips visible in one final transaction);
2. every member's benchmark report (one task per report);
3. the collaborative report and the blinded summary.

Prints each stage's wall time, their sum against the 15-minute target (ratio below 1.0 meets
it), and the member reports' wall and worker CPU seconds per report. ``--reports N`` renders
only N member reports and extrapolates that stage to every member (marked as such): a quick
run is ``--members 60 --measures 4 --rows 200000 --reports 40``. The machine is shared: wall
times are noisy.

``--floor`` then asks what no cut in drawing charts can reach: one member report of the run is
laid out again in this process as it is, with every chart a blank image of the same size, and
with no measure sections; each is set against the CPU per report the target leaves (15 minutes
on the workers, less the other stages, shared by every member).
"""

from __future__ import annotations

import argparse
import base64
import gc
import io
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_benchmark_run  # noqa: E402
from bench_benchmark_run import CYCLE, build  # noqa: E402
from bench_reports_workers import WorkerPool, render_job, run_job  # noqa: E402

from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: E402
from qicollab.jobs.services import JobService, JobState  # noqa: E402
from qicollab.migrations import upgrade  # noqa: E402
from qicollab.reporting.models import ReportKind  # noqa: E402
from qicollab.reporting.pdf import PdfRenderer, warm_up  # noqa: E402
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context  # noqa: E402
from qicollab.reporting.results import load_run  # noqa: E402

TARGET_SECONDS = 15 * 60


def _progress(label: str, every: int):
    started = time.perf_counter()
    shown = {"done": 0}

    def report(state: JobState) -> None:
        if state.total and state.done >= shown["done"] + every:
            shown["done"] = state.done
            elapsed = time.perf_counter() - started
            print(f"  {label}: {state.done}/{state.total} in {elapsed:.0f} s", flush=True)

    return report


def kept_world(workdir: Path, *, members: int, measures: int, rows: int) -> Path:
    """The collaborative's database: kept here, or kept by bench_benchmark_run.py, or built
    (with SQLite's journal and syncs off while building: a crash loses only the build)."""
    source = workdir / f"cycle-{measures}-{rows}-{members}.sqlite"
    if source.exists():
        return source
    for other in (workdir, *workdir.parent.glob("bench-run*")):
        kept = other / f"many-{measures}-{rows}-{members}.sqlite"
        if kept.exists():
            print(f"reusing {kept}")
            return kept
    started = time.perf_counter()
    building = Path(f"{source}.tmp")
    building.unlink(missing_ok=True)

    def fast_engine(settings: dict) -> sa.Engine:
        engine = create_engine_from_settings(settings)

        @sa.event.listens_for(engine, "connect")  # after the app's own (WAL) pragmas
        def fast_writes(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=OFF")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB
            cursor.close()

        return engine

    bench_benchmark_run.create_engine_from_settings = fast_engine
    try:
        build(f"sqlite:///{building}", rows=rows, members=members, measures=measures)
    finally:
        bench_benchmark_run.create_engine_from_settings = create_engine_from_settings
    building.rename(source)
    print(f"built the collaborative in {time.perf_counter() - started:.0f} s (not timed)")
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--measures", type=int, default=20)
    parser.add_argument("--rows", type=int, default=2_000_000, help="records per measure")
    parser.add_argument("--workers", type=int, default=2, help="`qicollab worker` processes")
    parser.add_argument(
        "--reports", type=int, default=None, help="member reports to render (default: all)"
    )
    parser.add_argument(
        "--floor", action="store_true", help="then time one member report with blank charts"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench-cycle")
    args = parser.parse_args()
    if args.reports is not None and not 0 < args.reports <= args.members:
        parser.error("--reports must be between 1 and --members")
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = kept_world(args.workdir, members=args.members, measures=args.measures, rows=args.rows)

    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        database = Path(scratch) / "cycle.sqlite"
        shutil.copyfile(source, database)
        settings = {
            "sqlalchemy.url": f"sqlite:///{database}",
            "qicollab.storage": str(Path(scratch) / "storage"),
            "qicollab.secret": "bench",
        }
        engine = create_engine_from_settings(settings)
        upgrade(engine)  # a world kept from before a migration gets its new columns
        engine.dispose()
        pool = WorkerPool(settings, args.workers, Path(scratch) / "workers", "cycle").start()
        try:
            print(
                f"{args.members} hospitals, {args.measures} measures x {args.rows:,} records, "
                f"{args.workers} `qicollab worker` processes, SQLite; {os.cpu_count()} cores, "
                f"load average {os.getloadavg()[0]:.1f} at the start (a shared machine: wall "
                "times are noisy)",
                flush=True,
            )
            stages, run_id, member_id = run_stages(settings, pool, args.reports)
        finally:
            pool.stop()
        floor = report_floor(settings, run_id, member_id) if args.floor else None

    total = sum(seconds for seconds, _ in stages.values())
    print(f"\n{'stage':<40}{'wall s':>9}")
    for name, (seconds, note) in stages.items():
        print(f"{name:<40}{seconds:>9.1f}  {note}")
    print(
        f"{'whole cycle':<40}{total:>9.1f}  target {TARGET_SECONDS} s (15 min): ratio "
        f"{total / TARGET_SECONDS:.2f} ({'met' if total <= TARGET_SECONDS else 'not met'})"
    )
    if floor is not None:
        others = sum(seconds for name, (seconds, _) in stages.items() if "member" not in name)
        budget = (TARGET_SECONDS - others) * args.workers / args.members
        print(
            f"\none member report laid out again (PDF CPU, median of {FLOOR_REPEATS}); the "
            f"target leaves {budget:.2f} s of worker CPU per member report for everything"
        )
        for name, (seconds, pages) in floor.items():
            share = seconds / budget
            print(f"  {name:<36}{seconds:>7.2f} s  {pages:>3} pages  {share:.2f}x the budget")


FLOOR_REPEATS = 5
_CHART = re.compile(r'(<figure>\s*<img src=")data:image/svg\+xml;base64,([^"]+)"')


def _blank_charts(html: str) -> str:
    """Every chart as an empty SVG with the chart's own size (its root element kept)."""

    def blank(match: re.Match[str]) -> str:
        svg = base64.b64decode(match.group(2)).decode("utf-8")
        root = re.search(r"<svg[^>]*>", svg)
        assert root is not None, "a chart without an <svg> root"
        empty = base64.b64encode((root.group(0) + "</svg>").encode()).decode("ascii")
        return f'{match.group(1)}data:image/svg+xml;base64,{empty}"'

    blanked, count = _CHART.subn(blank, html)
    assert count, "no chart found to blank"
    return blanked


def _without_measure_sections(html: str) -> str:
    start = html.index('<section class="measure"')
    return html[:start] + html[html.index('<h1 id="best-practice">') :]


def report_floor(settings: dict, run_id: int, member_id: int) -> dict[str, tuple[float, int]]:
    """PDF CPU (with the garbage it leaves collected) of one member report, as it is and cut."""
    warm_up()
    renderer = PdfRenderer()
    engine = create_engine_from_settings(settings)
    with get_session_factory(engine)() as session:
        run = load_run(session, run_id)
        spec = ReportSpec(ReportKind.MEMBER, member_id)
        html = renderer.html(TEMPLATES[spec.kind], report_context(session, run, spec))
    engine.dispose()
    variants = {
        "as it is": html,
        "every chart blank": _blank_charts(html),
        "no measure sections": _without_measure_sections(html),
    }
    renderer.pdf_from_html(html)  # warm: fonts, stylesheet, the run's shared drawings
    timed: dict[str, tuple[float, int]] = {}
    for name, variant in variants.items():
        seconds = []
        for _ in range(FLOOR_REPEATS):
            gc.collect()
            started = time.process_time()
            pdf = renderer.pdf_from_html(variant)
            gc.collect()
            seconds.append(time.process_time() - started)
        timed[name] = (statistics.median(seconds), len(PdfReader(io.BytesIO(pdf)).pages))
    return timed


def run_stages(
    settings: dict, pool: WorkerPool, reports: int | None
) -> tuple[dict[str, tuple[float, str]], int, int]:
    """Run and time each stage as jobs on the pool's queue; also the run and its first member."""
    from qicollab.benchmarking.models import MemberResult  # noqa: PLC0415
    from qicollab.benchmarking.services import BenchmarkRunService  # noqa: PLC0415

    engine = create_engine_from_settings(settings)
    factory = get_session_factory(engine)
    jobs = JobService(factory)
    stages: dict[str, tuple[float, str]] = {}

    run = BenchmarkRunService(factory).create(cycle_code=CYCLE, settings={"charts": True})
    assert run.job_id is not None
    timed = run_job(pool, jobs, run.job_id, progress=_progress("benchmark run", 1))
    if timed.state.error:
        raise SystemExit(f"benchmark run {run.id} failed: {timed.state.error}")
    stages["benchmark run"] = (timed.wall, f"{timed.cpu:.0f} s worker CPU")
    print(f"  benchmark run {run.id}: {timed.wall:.0f} s", flush=True)

    with factory() as session:
        reported = list(
            session.scalars(
                sa.select(MemberResult.member_id)
                .where(MemberResult.run_id == run.id)
                .distinct()
                .order_by(MemberResult.member_id)
            )
        )
    chosen = reported[:reports] if reports is not None else None
    count = len(chosen) if chosen is not None else len(reported)
    job_id = render_job(jobs, run.id, kinds=[ReportKind.MEMBER], member_ids=chosen)
    timed = run_job(pool, jobs, job_id, progress=_progress("member reports", max(10, count // 20)))
    rendered = (timed.state.result or {}).get("rendered", 0)
    if timed.state.error or rendered != count:
        raise SystemExit(f"member reports failed: {timed.state.error or timed.state.result}")
    note = f"{timed.wall / count:.2f} s/report wall, {timed.cpu / count:.2f} s/report worker CPU"
    if count < len(reported):
        stages[f"{len(reported)} member reports (extrapolated)"] = (
            timed.wall / count * len(reported),
            f"{note}; {count} rendered in {timed.wall:.0f} s",
        )
    else:
        stages[f"{count} member reports"] = (timed.wall, note)

    job_id = render_job(jobs, run.id, kinds=[ReportKind.COLLABORATIVE, ReportKind.BLINDED_SUMMARY])
    timed = run_job(pool, jobs, job_id)
    if timed.state.error:
        raise SystemExit(f"collaborative reports failed: {timed.state.error}")
    stages["collaborative report + blinded summary"] = (timed.wall, "")
    engine.dispose()
    return stages, run.id, reported[0]


if __name__ == "__main__":
    main()
