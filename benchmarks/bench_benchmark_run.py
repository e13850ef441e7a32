"""Benchmark-run benchmark (issue 3, section 10): the whole run for one measure, and for twenty.

    .venv/bin/python benchmarks/bench_benchmark_run.py [--rows 1000000] [--members 500]
        [--runs 3] [--many-measures 20] [--many-rows 2000000] [--skip-many] [--skip-pg]
        [--workdir DIR]

Builds a collaborative of ``--members`` members with one patient-level measure whose risk model
has 20 covariates (one 5-level categorical, 19 numeric or binary; 24 design columns with the
intercept), ``--rows`` patient records in one locked cycle, stored the way uploads store them
(one accepted submission per member, risk factors as JSON), in SQLite and (when the server
binaries are here) in a throwaway PostgreSQL cluster (tests/pg.py). Then, each in a fresh
process so the peak memory is the run's own:

* **one measure**: ``BenchmarkRunService.create`` + ``execute``: load from the database, fit the
  risk model, per-member O/E with exact/Byar intervals, EB shrinkage, funnel with
  overdispersion, ABC, peer groups, per-period results, the members' (yearly, safe-harbor)
  control charts, and the one-transaction store.
  Targets: < 20 s, peak RSS < 2 GiB.
* **twenty measures** on ``--many-rows`` records each (SQLite), computed the way
  ``qicollab compute --workers 2`` computes them: the run's job fans out one task per measure,
  taken by two worker processes (:func:`qicollab.jobs.local.run_here`): target < 5 min.

Prints the median of ``--runs`` runs and its ratio to the target (below 1.0 meets it), and the
median CPU seconds of the run (its process plus worker processes), which a shared, loaded
machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qicollab.cycles.models import (  # noqa: E402
    CycleStatus,
    Granularity,
    LearningCycle,
    ReportingPeriod,
)
from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: E402
from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType  # noqa: E402
from qicollab.measures.spec import (  # noqa: E402
    Covariate,
    CovariateType,
    OutcomeFamily,
    RiskModelSpec,
)
from qicollab.members.models import (  # noqa: E402
    BedSizeBand,
    Collaborative,
    DeidProfile,
    Member,
    OrgType,
    PeerGroup,
    Rurality,
)
from qicollab.migrations import upgrade  # noqa: E402
from qicollab.submissions.bulk import PATIENT_COLUMNS, insert_patient_table  # noqa: E402
from qicollab.submissions.models import Submission, SubmissionStatus  # noqa: E402

TARGETS = {"one_measure_s": 20.0, "one_measure_gib": 2.0, "many_measures_s": 300.0}
CYCLE = "BENCH"
YEAR = 2025
ASA = ("1", "2", "3", "4", "5")


def risk_model() -> RiskModelSpec:
    """20 covariates: 4 continuous, 15 binary flags, ASA class with 5 levels."""
    continuous = [
        Covariate("age", CovariateType.NUMERIC, "Age", minimum=18, maximum=110),
        Covariate("bmi", CovariateType.NUMERIC, "BMI", minimum=10, maximum=80),
        Covariate("creatinine", CovariateType.NUMERIC, "Creatinine", minimum=0, maximum=20),
        Covariate("albumin", CovariateType.NUMERIC, "Albumin", minimum=0, maximum=10),
    ]
    flags = [Covariate(f"flag{i:02d}", CovariateType.BINARY, f"Flag {i}") for i in range(15)]
    asa = Covariate("asa", CovariateType.CATEGORICAL, "ASA class", ASA, "1")
    return RiskModelSpec(
        outcome="died", family=OutcomeFamily.BINOMIAL, covariates=(*continuous, *flags, asa)
    )


def _patients(rng: np.random.Generator, n: int, n_members: int) -> dict[str, np.ndarray]:
    volume = rng.gamma(2.0, 1.0, n_members)
    member = np.sort(rng.choice(n_members, size=n, p=volume / volume.sum()))
    age = np.round(rng.normal(65, 14, n).clip(18, 105), 0)
    bmi = np.round(rng.normal(28, 5, n).clip(14, 70), 1)
    creatinine = np.round(rng.lognormal(0.0, 0.4, n), 2)
    albumin = np.round(rng.normal(3.8, 0.5, n).clip(1, 6), 1)
    flags = (rng.random((n, 15)) < np.linspace(0.03, 0.3, 15)).astype(np.int8)
    asa = rng.choice(5, size=n, p=[0.12, 0.4, 0.35, 0.11, 0.02])
    effect = rng.normal(0, 0.3, n_members)
    eta = (
        -7.2
        + 0.035 * age
        + 0.01 * bmi
        + 0.3 * creatinine
        - 0.4 * (albumin - 3.8)
        + flags @ np.linspace(0.1, 0.6, 15)
        + np.array([0.0, 0.4, 1.0, 1.7, 2.5])[asa]
        + effect[member]
    )
    died = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int8)
    return {
        "member": member,
        "age": age,
        "bmi": bmi,
        "creatinine": creatinine,
        "albumin": albumin,
        "flags": flags,
        "asa": asa,
        "died": died,
    }


def _risk_factor_json(data: dict[str, np.ndarray]) -> list[str]:
    flags = data["flags"]
    parts = [
        f'{{"age":{a:g},"bmi":{b:g},"creatinine":{c:g},"albumin":{al:g},'
        for a, b, c, al in zip(
            data["age"].tolist(),
            data["bmi"].tolist(),
            data["creatinine"].tolist(),
            data["albumin"].tolist(),
            strict=True,
        )
    ]
    flag_text = [
        ",".join(f'"flag{i:02d}":{v}' for i, v in enumerate(row)) for row in flags.tolist()
    ]
    return [
        f'{head}{tail},"asa":"{ASA[a]}"}}'
        for head, tail, a in zip(parts, flag_text, data["asa"].tolist(), strict=True)
    ]


def build(url: str, *, rows: int, members: int, measures: int, seed: int = 1) -> None:
    """A migrated database with the collaborative, a locked cycle and the patient records."""
    engine = create_engine_from_settings({"sqlalchemy.url": url})
    upgrade(engine)
    factory = get_session_factory(engine)
    rng = np.random.default_rng(seed)
    with factory() as session, session.begin():
        collaborative = Collaborative(
            slug="bench",
            name="Benchmark collaborative",
            deid_profile=DeidProfile.SAFE_HARBOR,
            default_methods={"spc_mode": "qic"},
        )
        session.add(collaborative)
        session.flush()
        member_rows = []
        for index in range(members):
            member_rows.append(
                Member(
                    collaborative_id=collaborative.id,
                    code=f"M{index:04d}",
                    name=f"Member {index}",
                    blinded_code=f"B{index:04d}",
                    org_type=OrgType.ACUTE_HOSPITAL,
                    bed_size_band=list(BedSizeBand)[index % 4],
                    teaching=index % 5 == 0,
                    rurality=Rurality.RURAL if index % 3 == 0 else Rurality.URBAN,
                    region=("North", "South", "East", "West")[index % 4],
                )
            )
        session.add_all(member_rows)
        session.flush()
        for code, predicate in (
            ("TEACH", lambda m: m.teaching),
            ("RURAL", lambda m: m.rurality is Rurality.RURAL),
            ("URBAN", lambda m: m.rurality is Rurality.URBAN),
            ("NORTH", lambda m: m.region == "North"),
        ):
            session.add(
                PeerGroup(
                    collaborative_id=collaborative.id,
                    code=code,
                    name=code.title(),
                    members=[m for m in member_rows if predicate(m)],
                )
            )
        period = ReportingPeriod(
            collaborative_id=collaborative.id,
            label=str(YEAR),
            granularity=Granularity.YEAR,
            start_date=dt.date(YEAR, 1, 1),
            end_date=dt.date(YEAR, 12, 31),
        )
        session.add(period)
        measure_rows = [
            Measure(
                collaborative_id=collaborative.id,
                code=f"MORT{k:02d}",
                title=f"Risk-adjusted mortality {k}",
                measure_type=MeasureType.RATIO,
                level=DataLevel.PATIENT,
                direction=Direction.DECREASE,
                multiplier=100.0,
                minimum_volume=25,
                risk_model=risk_model().to_json(),
            )
            for k in range(measures)
        ]
        session.add_all(measure_rows)
        session.flush()
        session.add(
            LearningCycle(
                collaborative_id=collaborative.id,
                code=CYCLE,
                title="Benchmark cycle",
                status=CycleStatus.LOCKED,
                first_period_start=dt.date(YEAR, 1, 1),
                last_period_end=dt.date(YEAR, 12, 31),
                window_opens_at=dt.datetime(YEAR, 12, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(YEAR + 1, 1, 31, tzinfo=dt.UTC),
                locked_at=dt.datetime(YEAR + 1, 2, 1, tzinfo=dt.UTC),
                measures=measure_rows,
            )
        )
        session.flush()
        member_ids = np.array([m.id for m in member_rows])
        now = dt.datetime(YEAR + 1, 1, 15, tzinfo=dt.UTC)
        for measure in measure_rows:
            data = _patients(rng, rows, members)
            submission_ids = session.scalars(
                sa.insert(Submission).returning(Submission.id, sort_by_parameter_order=True),
                [
                    {
                        "member_id": int(member_id),
                        "measure_id": measure.id,
                        "period_id": period.id,
                        "version": 1,
                        "status": SubmissionStatus.ACCEPTED,
                        "content_hash": f"{measure.id}-{member_id}",
                        "submitted_at": now,
                        "reviewed_at": now,
                        "created_at": now,
                    }
                    for member_id in member_ids
                ],
            ).all()
            submission_of = np.array(submission_ids)[data["member"]]
            sequence = np.arange(rows) - np.searchsorted(data["member"], data["member"])
            columns = [
                submission_of,
                [f"K{measure.id}-{i}" for i in range(rows)],
                np.full(rows, YEAR),
                pa.nulls(rows, pa.int64()),  # safe harbor: no month of event
                sequence + 1,
                data["died"].astype(float),
                _risk_factor_json(data),
            ]
            insert_patient_table(
                session.connection(),
                pa.table(dict(zip(PATIENT_COLUMNS, columns, strict=True))),
            )
            del data
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def child(url: str, workers: int, charts: bool) -> None:
    """One run in this fresh process (``workers`` > 1: one task per measure, taken by that many
    worker processes started for it); prints timings and the peak RSS as JSON."""
    from qicollab.benchmarking.services import BenchmarkRunService  # noqa: PLC0415

    engine = create_engine_from_settings({"sqlalchemy.url": url})
    service = BenchmarkRunService(get_session_factory(engine))
    started = time.perf_counter()
    cpu_started = time.process_time()
    run = service.create(cycle_code=CYCLE, settings={"charts": charts})
    if workers > 1:
        from qicollab.jobs.local import run_here  # noqa: PLC0415
        from qicollab.jobs.progress import follow_job  # noqa: PLC0415

        assert service.jobs is not None
        assert run.job_id is not None
        with tempfile.TemporaryDirectory(prefix="bench-run-storage-") as storage:
            settings = {"sqlalchemy.url": url, "qicollab.storage": storage}
            with run_here(settings, run.job_id, processes=workers, engine=engine):
                state = follow_job(service.jobs, run.job_id, file=io.StringIO())
        if state.error:
            raise SystemExit(f"run {run.id} failed: {state.error}")
    else:
        service.execute(run.id)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    job = service.jobs.get(run.job_id) if service.jobs and run.job_id else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(
        json.dumps(
            {
                "seconds": elapsed,
                # CPU of this process and of its ended worker processes: steadier than wall
                # time on a shared machine.
                "cpu_seconds": cpu + children.ru_utime + children.ru_stime,
                "peak_gib": peak,
                "children_peak_gib": children.ru_maxrss / 1024 / 1024,
                "detail": job.result if job else None,
            }
        )
    )
    engine.dispose()


def measure(url: str, runs: int, *, workers: int = 1, charts: bool = True) -> list[dict[str, Any]]:
    """Run ``child`` in fresh processes ``runs`` times."""
    results = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, __file__, "--child", url, "--workers", str(workers)]
            + ([] if charts else ["--no-charts"]),
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    return results


def report(label: str, results: list[dict[str, Any]], target_key: str) -> None:
    seconds = statistics.median(r["seconds"] for r in results)
    each = ", ".join(f"{r['seconds']:.2f}" for r in results)
    print(
        f"{label}: median {seconds:.2f} s over {len(results)} runs (runs: {each}); "
        f"target {TARGETS[target_key]:.0f} s, ratio {seconds / TARGETS[target_key]:.2f}"
    )
    cpu = statistics.median(r["cpu_seconds"] for r in results)
    print(
        f"{label}: CPU (process_time, incl. workers) median {cpu:.2f} s; target "
        f"{TARGETS[target_key]:.0f} s, ratio {cpu / TARGETS[target_key]:.2f}"
    )
    if target_key == "one_measure_s":
        peak = statistics.median(r["peak_gib"] for r in results)
        print(
            f"{label}: peak RSS median {peak:.2f} GiB; target {TARGETS['one_measure_gib']:.0f} "
            f"GiB, ratio {peak / TARGETS['one_measure_gib']:.2f}"
        )
    detail = results[-1].get("detail") or {}
    if detail.get("seconds"):
        print(f"{label}: last run's steps (s): {json.dumps(detail['seconds'])}")
        print(f"{label}: store {detail.get('store_seconds')} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--many-measures", type=int, default=20)
    parser.add_argument("--many-rows", type=int, default=2_000_000)
    parser.add_argument("--many-runs", type=int, default=1)
    parser.add_argument("--skip-many", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--no-charts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers, not args.no_charts)
        return

    # A folder given with --workdir keeps the built databases for the next run; a temporary one
    # (tens of GB with the twenty-measure database) is removed at the end.
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work folder {workdir}")
    try:
        if not args.skip_sqlite:
            bench_sqlite_one(args, workdir)
        if not args.skip_pg:
            bench_postgres(args, workdir)
        if not args.skip_many:
            bench_many(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def bench_sqlite_one(args: argparse.Namespace, workdir: Path) -> None:
    path = workdir / f"one-{args.rows}-{args.members}.sqlite"
    if not path.exists():
        started = time.perf_counter()
        build(f"sqlite:///{path}.tmp", rows=args.rows, members=args.members, measures=1)
        Path(f"{path}.tmp").rename(path)
        print(f"built SQLite with {args.rows:,} records in {time.perf_counter() - started:.1f} s")
    runs = []
    for _ in range(args.runs):
        copy = workdir / "run.sqlite"
        shutil.copyfile(path, copy)  # every run starts from the same database
        runs += measure(f"sqlite:///{copy}", 1)
    report(f"SQLite, 1 measure x {args.rows:,} records", runs, "one_measure_s")


def bench_many(args: argparse.Namespace, workdir: Path) -> None:
    many = workdir / f"many-{args.many_measures}-{args.many_rows}-{args.members}.sqlite"
    if not many.exists():
        started = time.perf_counter()
        build(
            f"sqlite:///{many}.tmp",
            rows=args.many_rows,
            members=args.members,
            measures=args.many_measures,
        )
        Path(f"{many}.tmp").rename(many)
        print(
            f"built SQLite with {args.many_measures} x {args.many_rows:,} records in "
            f"{time.perf_counter() - started:.1f} s"
        )
    results = []
    for _ in range(args.many_runs):
        copy = workdir / "many-run.sqlite"
        shutil.copyfile(many, copy)
        results += measure(f"sqlite:///{copy}", 1, workers=2)
    report(
        f"SQLite, {args.many_measures} measures x {args.many_rows:,} records, "
        "one task per measure on 2 worker processes",
        results,
        "many_measures_s",
    )


def bench_postgres(args: argparse.Namespace, workdir: Path) -> None:
    from tests.pg import PostgresCluster, postgres_unavailable_reason  # noqa: PLC0415

    reason = postgres_unavailable_reason()
    if reason:
        print(f"PostgreSQL skipped: {reason}")
        return
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="bench-pg-", dir=workdir)))
    cluster.start()
    try:
        cluster.create_database("bench_template")
        started = time.perf_counter()
        build(cluster.url("bench_template"), rows=args.rows, members=args.members, measures=1)
        print(
            f"built PostgreSQL with {args.rows:,} records in {time.perf_counter() - started:.1f} s"
        )
        runs = []
        for index in range(args.runs):
            name = f"bench_{index}"
            cluster.create_database(name, template="bench_template")
            runs += measure(cluster.url(name), 1)
        report(f"PostgreSQL, 1 measure x {args.rows:,} records", runs, "one_measure_s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
