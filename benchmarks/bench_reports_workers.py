"""Member reports with one worker process vs two, side by side (issue 16, item 6).

    python benchmarks/bench_reports_workers.py [--members 1000] [--rounds 4] [--world 1000]

Renders ``--members`` member reports of a synthetic collaborative of ``--world`` hospitals
(6 measures x 36 months, the reporting tests' builder, kept in ``--folder``) through the
report batch's worker path (``ReportRenderer``: a pool of long-lived worker processes that
keep WeasyPrint, the run's data and the shared chart layers warm). The members are split into
``--rounds`` blocks; each block is rendered with 1 worker and with 2 (the order alternating),
so both see the same reports and the same machine load. Prints, per configuration, the median
over rounds of wall seconds per report and the workers' CPU seconds per report, and the median
of the paired ratios (2 workers' reports per second / 1 worker's): the target is >= 1.85x,
what is lost below 2x is dispatch overhead (pool start-up, the parent recording each report,
the machine's other load). Pool start-up is inside each block's time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reports import build  # noqa: E402

from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: E402
from qicollab.reporting.models import ReportKind  # noqa: E402
from qicollab.reporting.rendering import ReportRenderer  # noqa: E402

TARGET_RATIO = 1.85


def render_block(settings: dict, run_id: int, members: list[int], workers: int) -> dict:
    """Wall and worker CPU seconds per report for one block with ``workers`` processes."""
    engine = create_engine_from_settings(settings)
    renderer = ReportRenderer(get_session_factory(engine), settings, workers=workers)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    summary = renderer.render_run(run_id, member_ids=members, kinds=[ReportKind.MEMBER])
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    engine.dispose()
    if summary.failed:
        raise SystemExit(f"{len(summary.failed)} reports failed: {summary.to_json()['failed']}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"wall": wall / len(members), "cpu": cpu / len(members)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="reports per configuration")
    parser.add_argument("--rounds", type=int, default=4, help="blocks, each rendered 1 vs 2")
    parser.add_argument("--world", type=int, default=1000, help="hospitals in the collaborative")
    parser.add_argument("--measures", type=int, default=6)
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench-reports")
    args = parser.parse_args()
    if not 0 < args.members <= args.world:
        parser.error("--members must be between 1 and --world")
    args.folder.mkdir(parents=True, exist_ok=True)
    settings, (run_id, first_member, _officer) = build(args.folder, args.world, args.measures)
    members = list(range(first_member, first_member + args.members))
    rounds = max(1, min(args.rounds, args.members))
    size = -(-len(members) // rounds)
    blocks = [members[i : i + size] for i in range(0, len(members), size)]
    print(
        f"{args.members} member reports of a {args.world}-hospital collaborative "
        f"({args.measures} measures x 36 months, SQLite), {len(blocks)} rounds of "
        f"~{size}; through ReportRenderer's pool of long-lived worker processes (not yet "
        f"through the per-task huey dispatch); {os.cpu_count()} cores, load "
        f"average {os.getloadavg()[0]:.1f} at the start (a shared machine: wall times are "
        "noisy, CPU times less so)",
        flush=True,
    )
    results: dict[int, list[dict]] = {1: [], 2: []}
    ratios = []
    for index, block in enumerate(blocks):
        order = (1, 2) if index % 2 == 0 else (2, 1)
        timed = {workers: render_block(settings, run_id, block, workers) for workers in order}
        for workers in (1, 2):
            results[workers].append(timed[workers])
        ratios.append(timed[1]["wall"] / timed[2]["wall"])
        print(
            f"round {index + 1}/{len(blocks)} ({len(block)} reports): 1 worker "
            f"{timed[1]['wall']:.2f} s/report, 2 workers {timed[2]['wall']:.2f} s/report, "
            f"ratio {ratios[-1]:.2f}x; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    one = {k: statistics.median(r[k] for r in results[1]) for k in ("wall", "cpu")}
    two = {k: statistics.median(r[k] for r in results[2]) for k in ("wall", "cpu")}
    ratio = statistics.median(ratios)
    print(f"{'':14}{'1 worker':>12}{'2 workers':>12}")
    print(f"{'wall s/report':14}{one['wall']:>12.2f}{two['wall']:>12.2f}")
    print(f"{'CPU s/report':14}{one['cpu']:>12.2f}{two['cpu']:>12.2f}")
    print(
        f"{'1,000 reports':14}{one['wall'] * 1000 / 60:>10.1f} m{two['wall'] * 1000 / 60:>10.1f} m"
    )
    print(
        f"speed-up with 2 workers: {ratio:.2f}x (median of {len(ratios)} paired rounds); "
        f"target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'not met'} "
        f"(ratio to target {ratio / TARGET_RATIO:.2f})"
    )


if __name__ == "__main__":
    main()
