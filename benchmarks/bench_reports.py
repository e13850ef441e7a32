"""Report and results-page speed at collaborative scale (issue 6, items 10).

One command, printing medians and ratios against the targets:

* one member benchmark report (about 13 pages, 18 charts: each measure's funnel, caterpillar
  and control chart where they apply, and the patient-level measure's RA-CUSUM/VLAD, with
  1,000 members on the peer charts) rendered warm: target < 3 s;
* reports for 1,000 members with 2 warm ``qicollab worker`` processes (a report batch job
  fanned out into one task per report), extrapolated from a timed sample: target < 25
  minutes (benchmarks/bench_reports_workers.py sets 1 worker against 2 on the full batch);
* a member's results page, server time through the WSGI app (WebTest, no network), built on a
  member's first visit: target < 300 ms (and served again from the page cache).

The collaborative (1,000 members, 6 measures, 36 months) is written straight into the result
tables by the reporting tests' builder and kept in ``--folder`` for later runs.

    .venv/bin/python benchmarks/bench_reports.py [--members 1000] [--measures 6] [--sample 16]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the reporting tests' world builder lives in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
import webtest  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from qicollab import make_config  # noqa: E402
from qicollab.accounts.models import Role, User  # noqa: E402
from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: E402
from qicollab.jobs.services import JobService  # noqa: E402
from qicollab.migrations import upgrade  # noqa: E402
from qicollab.reporting.models import ReportKind  # noqa: E402
from qicollab.reporting.pdf import PdfRenderer, warm_up  # noqa: E402
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context  # noqa: E402
from qicollab.reporting.results import load_run  # noqa: E402
from qicollab.security import IDENTITY_LOADER_KEY  # noqa: E402
from tests.reporting.world import build_world  # noqa: E402

#: Bump when tests/reporting/world.py changes what it builds.
WORLD_VERSION = 3


def build(folder: Path, members: int, measures: int) -> tuple[dict, object]:

    database = folder / f"bench-{members}x{measures}.sqlite"
    settings = {
        "sqlalchemy.url": f"sqlite:///{database}",
        "qicollab.storage": str(folder / "storage"),
        "qicollab.secret": "bench",
    }
    # The marker names the builder's version: a database built by an older builder (e.g. one
    # whose cycle was not yet published, so members saw no results) is built again.
    marker = database.with_suffix(f".ready-v{WORLD_VERSION}")
    engine = create_engine_from_settings(settings)
    if not marker.exists():
        for stale in folder.glob(f"{database.stem}.*"):  # database, WAL, old markers
            stale.unlink()
        engine.dispose()
        engine = create_engine_from_settings(settings)
        upgrade(engine)
        started = time.perf_counter()
        with get_session_factory(engine)() as session:
            world = build_world(session, n_members=members, n_measures=measures, months=36)
        marker.write_text(f"{world.run_id} {world.member} {world.users['officer']}")
        seconds = time.perf_counter() - started
        print(f"built {members} members x {measures} measures in {seconds:.0f} s")
    else:
        upgrade(engine)  # a world kept from before a migration gets its new columns
    engine.dispose()
    run_id, member_id, officer_id = (int(v) for v in marker.read_text().split())
    return settings, (run_id, member_id, officer_id)


def median(values: list[float]) -> float:
    return statistics.median(values)


def single_report(settings: dict, run_id: int, member_id: int, repeats: int) -> dict:
    """Warm render of one member report in this process (context + HTML + PDF). Parts are
    process CPU seconds (other work on the shared machine does not inflate them), with the
    CPU the garbage collector took during each report (gc.callbacks)."""

    warm_up()
    renderer = PdfRenderer()
    engine = create_engine_from_settings(settings)
    times, contexts, layouts, cpu, collector = [], [], [], [], []
    collecting = {"since": 0.0, "total": 0.0}

    def timed_collection(phase: str, _info: dict) -> None:
        if phase == "start":
            collecting["since"] = time.process_time()
        else:
            collecting["total"] += time.process_time() - collecting["since"]

    gc.callbacks.append(timed_collection)
    with get_session_factory(engine)() as session:
        run = load_run(session, run_id)
        pages = charts = 0
        for i in range(repeats + 1):
            spec = ReportSpec(ReportKind.MEMBER, member_id + i)
            collecting["total"] = 0.0
            cpu_started = time.process_time()
            started = time.perf_counter()
            context = report_context(session, run, spec)
            html = renderer.html(TEMPLATES[spec.kind], context)
            built = time.process_time()
            pdf = renderer.pdf_from_html(html)
            done = time.perf_counter()
            cpu_done = time.process_time()
            if i == 0:  # the first report of a run also reads the run (cached after)
                pages = len(PdfReader(io.BytesIO(pdf)).pages)
                charts = html.count("<figure>")
                continue
            times.append(done - started)
            cpu.append(cpu_done - cpu_started)
            contexts.append(built - cpu_started)
            layouts.append(cpu_done - built)
            collector.append(collecting["total"])
    gc.callbacks.remove(timed_collection)
    engine.dispose()
    return {
        "total": median(times),
        "cpu": median(cpu),
        "context": median(contexts),
        "pdf": median(layouts),
        "collector": median(collector),
        "pages": pages,
        "charts": charts,
    }


def workers_throughput(
    settings: dict, folder: Path, run_id: int, member_ids: list[int], warm: list[int]
) -> dict:
    """Wall seconds per report with 2 ``qicollab worker`` processes, warmed on ``warm``'s
    reports first, and their CPU seconds per report (what a machine with free cores needs)."""
    from bench_reports_workers import WorkerPool, render_block  # noqa: PLC0415 - imports us

    engine = create_engine_from_settings(settings)
    jobs = JobService(get_session_factory(engine))
    pool = WorkerPool(settings, 2, folder / "workers", "2-workers")
    try:
        pool.start()
        render_block(pool, jobs, run_id, warm)
        return render_block(pool, jobs, run_id, member_ids)
    finally:
        pool.stop()
        engine.dispose()


def results_page(settings: dict, member_id: int, officer_id: int, repeats: int) -> dict:
    """Server time of the member results page: built (the first visit of each of ``repeats``
    members, read by a coordinator, as no officer may open another member's page) and served
    again (the member's officer, ``repeats`` times, from the page cache)."""
    user = {"id": officer_id}

    def loader(request):
        return request.db.get(User, user["id"])

    config = make_config(dict(settings))
    config.registry[IDENTITY_LOADER_KEY] = loader
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    url = f"/members/{member_id}/results"
    first_started = time.perf_counter()
    response = app.get(url)
    first = time.perf_counter() - first_started
    if "<svg" not in response.text:
        msg = f"{url} shows no charts: not a results page (stale --folder? try --fresh)"
        raise SystemExit(msg)
    again = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.get(url)
        again.append(time.perf_counter() - started)

    engine = create_engine_from_settings(settings)
    with get_session_factory(engine)() as session:
        user["id"] = session.scalar(
            sa.select(User.id).where(User.role == Role.COORDINATOR).order_by(User.id)
        )
    engine.dispose()
    built = []
    for other in range(member_id + 1, member_id + 1 + repeats):
        started = time.perf_counter()
        app.get(f"/members/{other}/results")
        built.append(time.perf_counter() - started)
    return {
        "built": median(built),
        "again": median(again),
        "first": first,
        "bytes": len(response.body),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--measures", type=int, default=6)
    parser.add_argument("--sample", type=int, default=16, help="reports timed on the workers")
    parser.add_argument("--repeats", type=int, default=5, help="warm single-report repeats")
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench-reports")
    parser.add_argument("--fresh", action="store_true", help="rebuild the collaborative")
    parser.add_argument(
        "--single-only", action="store_true", help="time one member report warm, nothing else"
    )
    args = parser.parse_args()
    if args.fresh and args.folder.exists():
        shutil.rmtree(args.folder)
    args.folder.mkdir(parents=True, exist_ok=True)
    settings, (run_id, first_member, officer_id) = build(args.folder, args.members, args.measures)

    load = os.getloadavg()[0]
    print(
        f"\n{args.members} members x {args.measures} measures x 36 months (SQLite); "
        f"{os.cpu_count()} cores, load average {load:.1f} at the start (other work on the "
        "machine inflates wall times; CPU times do not depend on it)"
    )
    single = single_report(settings, run_id, first_member, args.repeats)
    print(
        f"one member report, warm (median of {args.repeats}): {single['total']:.2f} s wall, "
        f"{single['cpu']:.2f} s CPU (context + HTML {single['context']:.2f} s, PDF "
        f"{single['pdf']:.2f} s, garbage collector {single['collector']:.2f} s); "
        f"{single['pages']} pages, {single['charts']} charts; "
        f"target < 3 s: ratio {single['total'] / 3:.2f} (wall), {single['cpu'] / 3:.2f} (CPU)"
    )
    if args.single_only:
        return

    sample = list(range(first_member + 10, first_member + 10 + args.sample))
    warm = [first_member + 10 + args.sample + i for i in range(2)]
    timed = workers_throughput(settings, args.folder, run_id, sample, warm)
    minutes = timed["wall"] * 1000 / 60
    cpu_minutes = timed["cpu"] * 1000 / 2 / 60
    print(
        f"2 warm `qicollab worker` processes ({timed['workers']} took part), one task per "
        f"report: {timed['wall']:.2f} s wall per report over {len(sample)} reports -> 1,000 "
        f"member reports in {minutes:.1f} min (target < 25 min: ratio {minutes / 25:.2f}); "
        f"workers' CPU {timed['cpu']:.2f} s per report -> {cpu_minutes:.1f} min on 2 free "
        f"cores (ratio {cpu_minutes / 25:.2f}); 1 worker vs 2: "
        "benchmarks/bench_reports_workers.py"
    )

    page = results_page(settings, first_member, officer_id, repeats=20)
    print(
        f"member results page, built on a member's first visit (median of 20 members): "
        f"{page['built'] * 1000:.0f} ms, target < 300 ms: ratio {page['built'] / 0.3:.2f}; "
        f"served again from the page cache: {page['again'] * 1000:.0f} ms; the process's very "
        f"first request (run read from the database): {page['first'] * 1000:.0f} ms; "
        f"{page['bytes'] / 1024:.0f} KB"
    )


if __name__ == "__main__":
    main()
