"""Member reports with one ``qicollab worker`` process vs two, side by side (issue 16, item 6).

    python benchmarks/bench_reports_workers.py [--reports 1000] [--rounds 4] [--world 1000]

Renders ``--reports`` member reports of a synthetic collaborative of ``--world`` hospitals
(6 measures x 36 months, the reporting tests' builder, kept in ``--folder``) the way the
portal's "Render reports" does: a report batch job is enqueued, its handler fans it out into
one task per report, and real ``qicollab worker`` processes (separate OS processes, each one
consumer thread, started and warmed before timing) take the tasks from the queue, render and
record them. Each configuration (1 worker, 2 workers) has its own queue, so both pools stay
warm between rounds. The reports are split into ``--rounds`` blocks; each block is rendered
by 1 worker and by 2 (the order alternating), so both see the same reports and machine load.

Timing runs from the enqueue to the job's completion as the database records it (its last
task's final step). Prints, per configuration, the median over rounds of wall seconds per
report and the workers' CPU seconds per report, and the median of the paired ratios (2
workers' reports per second / 1 worker's): the target is >= 1.85x; what is lost below 2x is
dispatch overhead (planning, claims, leases, recording, the final step) and the machine's
other load. A quick check: ``--reports 40 --rounds 2 --world 60``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from bench_reports import build  # noqa: E402

from qicollab.db import create_engine_from_settings, get_session_factory, utcnow  # noqa: E402
from qicollab.jobs.models import WorkerHeartbeat  # noqa: E402
from qicollab.jobs.queue import JobQueue  # noqa: E402
from qicollab.jobs.services import JobService, JobState  # noqa: E402
from qicollab.reporting.models import ReportKind  # noqa: E402
from qicollab.reporting.rendering import JOB_KIND  # noqa: E402

TARGET_RATIO = 1.85
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class WorkerPool:
    """``count`` real ``qicollab worker`` processes consuming their own queue (a SQLite huey
    file in ``folder``), on the database and file store of ``settings``."""

    settings: dict[str, Any]
    count: int
    folder: Path
    label: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def queue_settings(self) -> dict[str, Any]:
        """The settings every process of this pool (and the enqueuer) builds from."""
        return {
            **self.settings,
            "qicollab.queue.backend": "sqlite",
            "qicollab.queue.url": str(self.folder / f"queue-{self.label}.sqlite"),
            "qicollab.queue.consumer": "separate",
        }

    def start(self) -> WorkerPool:
        """Start the processes and wait until each has stamped its heartbeat."""
        self.folder.mkdir(parents=True, exist_ok=True)
        ini = self.folder / f"{self.label}.ini"
        lines = ["[app:main]", "use = egg:qicollab"]
        lines += [f"{key} = {value}" for key, value in self.queue_settings.items()]
        ini.write_text("\n".join(lines) + "\n")
        for index in range(self.count):
            log = (self.folder / f"{self.label}-{index}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "qicollab", "--config", str(ini), "worker"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            )
        names = {f"{socket.gethostname()}:{p.pid}" for p in self.processes}
        engine = create_engine_from_settings(self.settings)
        deadline = time.monotonic() + 120
        try:
            while True:
                with engine.connect() as connection:
                    beating = set(connection.scalars(sa.select(WorkerHeartbeat.name)))
                if names <= beating:
                    return self
                for process in self.processes:
                    if process.poll() is not None:
                        raise SystemExit(f"a worker of {self.label} exited; see {self.folder}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"the workers of {self.label} did not start")
                time.sleep(0.2)
        finally:
            engine.dispose()

    def cpu_seconds(self) -> float:
        """CPU seconds the pool's processes have used so far."""
        return sum(_cpu_seconds(process.pid) for process in self.processes)

    def stop(self) -> None:
        """Ctrl-C each process (huey finishes its task), then wait."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass(frozen=True)
class Timed:
    """A job run by a pool: its final state, wall seconds from enqueue to completion, and the
    pool's CPU seconds over that time."""

    state: JobState
    wall: float
    cpu: float


def run_job(
    pool: WorkerPool,
    jobs: JobService,
    job_id: int,
    *,
    progress: Callable[[JobState], None] | None = None,
    timeout: float = 6 * 3600,
) -> Timed:
    """Enqueue a created job on the pool's queue and wait for it to finish."""
    queue = JobQueue(pool.queue_settings)
    cpu_before = pool.cpu_seconds()
    enqueued = utcnow()
    try:
        queue.enqueue(job_id)
    finally:
        queue.close()
    deadline = time.monotonic() + timeout
    while True:
        state = jobs.get(job_id)
        if progress is not None:
            progress(state)
        if state.finished:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not finish in {timeout:.0f} s")
        time.sleep(0.2)
    cpu = pool.cpu_seconds() - cpu_before
    assert state.finished_at is not None
    return Timed(state, (state.finished_at - enqueued).total_seconds(), cpu)


def render_job(
    jobs: JobService,
    run_id: int,
    *,
    kinds: list[ReportKind],
    member_ids: list[int] | None = None,
) -> int:
    """A report batch job as the portal creates it (the queue fans it out)."""
    params: dict[str, Any] = {"run_id": run_id, "kinds": [kind.value for kind in kinds]}
    if member_ids is not None:
        params["member_ids"] = member_ids
    return jobs.create(JOB_KIND, params=params).id


def render_block(pool: WorkerPool, jobs: JobService, run_id: int, members: list[int]) -> dict:
    """Wall and worker CPU seconds per report for one block rendered by ``pool``."""
    job_id = render_job(jobs, run_id, kinds=[ReportKind.MEMBER], member_ids=members)
    timed = run_job(pool, jobs, job_id)
    result = timed.state.result or {}
    if timed.state.error or result.get("rendered") != len(members):
        raise SystemExit(f"job {job_id}: {timed.state.error or result}")
    return {
        "wall": timed.wall / len(members),
        "cpu": timed.cpu / len(members),
        "workers": len(result.get("workers", [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1000, help="reports per configuration")
    parser.add_argument("--rounds", type=int, default=4, help="blocks, each rendered 1 vs 2")
    parser.add_argument("--world", type=int, default=1000, help="hospitals in the collaborative")
    parser.add_argument("--measures", type=int, default=6)
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench-reports")
    args = parser.parse_args()
    if not 0 < args.reports <= args.world:
        parser.error("--reports must be between 1 and --world")
    args.folder.mkdir(parents=True, exist_ok=True)
    settings, (run_id, first_member, _officer) = build(args.folder, args.world, args.measures)
    members = list(range(first_member, first_member + args.reports))
    rounds = max(1, min(args.rounds, args.reports))
    size = -(-len(members) // rounds)
    blocks = [members[i : i + size] for i in range(0, len(members), size)]
    engine = create_engine_from_settings(settings)
    jobs = JobService(get_session_factory(engine))
    pools = {
        count: WorkerPool(settings, count, args.folder / "workers", f"{count}-workers")
        for count in (1, 2)
    }
    try:
        for pool in pools.values():
            pool.start()
        # Warm each pool (imports, WeasyPrint, the run's shared data) before timing; the
        # members after the timed ones, so no timed report was rendered before.
        spare = list(range(first_member + args.reports, first_member + args.world))
        warm = (spare or members)[:4]
        for pool in pools.values():
            render_block(pool, jobs, run_id, warm)
        print(
            f"{args.reports} member reports of a {args.world}-hospital collaborative "
            f"({args.measures} measures x 36 months, SQLite), {len(blocks)} rounds of "
            f"~{size}; one report batch job per round, fanned out to one task per report "
            f"and taken by `qicollab worker` processes (warm); {os.cpu_count()} cores, load "
            f"average {os.getloadavg()[0]:.1f} at the start (a shared machine: wall times are "
            "noisy, CPU times less so)",
            flush=True,
        )
        results: dict[int, list[dict]] = {1: [], 2: []}
        ratios = []
        for index, block in enumerate(blocks):
            order = (1, 2) if index % 2 == 0 else (2, 1)
            timed = {count: render_block(pools[count], jobs, run_id, block) for count in order}
            for count in (1, 2):
                results[count].append(timed[count])
            ratios.append(timed[1]["wall"] / timed[2]["wall"])
            print(
                f"round {index + 1}/{len(blocks)} ({len(block)} reports): 1 worker "
                f"{timed[1]['wall']:.2f} s/report, 2 workers {timed[2]['wall']:.2f} s/report "
                f"({timed[2]['workers']} took part), ratio {ratios[-1]:.2f}x; load average "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        for pool in pools.values():
            pool.stop()
        engine.dispose()
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
