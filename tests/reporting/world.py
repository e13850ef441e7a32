"""A collaborative with a finished benchmark run, written straight into the result tables.

The reporting domain reads stored results; building them here (instead of running the engine)
keeps these tests independent of the statistics and lets them plant exactly what they check:
peers with small counts (to be suppressed), distinctive member names (to prove blinding), a
corrected submission (data appendix), annotations of the member and of another member (only
the member's own may show), and, on request, hostile names.

``benchmarks/bench_reports.py`` uses the same builder at 1,000 members.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from qicollab.accounts.models import Role, User
from qicollab.benchmarking import methods
from qicollab.benchmarking.charts import case_order_charts, cusum_limits
from qicollab.benchmarking.compute import benchmark_standings
from qicollab.benchmarking.models import (
    BenchmarkRun,
    MeasureSummary,
    MemberResult,
    ResultScope,
    RiskModelFitRecord,
    RunStatus,
    StoredChart,
    run_submissions,
)
from qicollab.benchmarking.payloads import (
    ControlChartPayload,
    Distribution,
    FunnelPayload,
    MemberPayload,
    PeerStanding,
    PeriodPayload,
    StatusPair,
    SummaryPayload,
    YearValue,
)
from qicollab.benchmarking.services import measure_info
from qicollab.benchmarking.settings import RunSettings
from qicollab.cycles.models import (
    Annotation,
    AnnotationKind,
    CycleStatus,
    Granularity,
    LearningCycle,
    ReportingPeriod,
    cycle_measures,
)
from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.members.models import (
    BedSizeBand,
    Collaborative,
    Member,
    OrgType,
    PeerGroup,
    Rurality,
    peer_group_members,
)
from qicollab.stats import peer, pooling
from qicollab.stats.cusum import CusumLimit
from qicollab.stats.spc_results import ControlChart
from qicollab.submissions.models import Submission, SubmissionStatus

HOSTILE_MEMBER = '<img src="file:///etc/passwd">St Evil <link href="http://example.com/x.css">'
HOSTILE_MEASURE = 'Hostile <link href="http://example.com/x.css"> url(file:///etc/passwd) measure'
HOSTILE_NOTE = 'Change <img src="http://example.com/track.png"> url(file:///etc/shadow)'

_NAMES = (
    "Ashgrove Memorial",
    "Brackenfield General",
    "Copperbeech Infirmary",
    "Dunmore Valley",
    "Elderwick Royal",
    "Foxhollow Community",
    "Glenarden County",
    "Hartsmere District",
    "Ivybridge Regional",
    "Juniper Heights",
    "Kestrel Point",
    "Larchmont Teaching",
)

RISK_MODEL = {
    "outcome": "died_30d",
    "outcome_label": "Died within 30 days",
    "family": "binomial",
    "covariates": [
        {"name": "age", "type": "numeric", "label": "Age", "minimum": 18, "maximum": 110},
        {"name": "emergency", "type": "binary", "label": "Emergency"},
    ],
}


def _risks(rng: np.random.Generator, base: float, size: int) -> np.ndarray:
    """Expected risks of cases, spread around ``base`` as a case mix is."""
    return np.clip(rng.beta(2.0, 2.0 / base - 2.0, size=size), 0.001, 0.6)


def _pooled_cusum_limits(measure: Measure, base: float) -> tuple[CusumLimit, CusumLimit]:
    """RA-CUSUM limits as a run finds them (fewer simulated paths: this is a fixture)."""
    rng = np.random.default_rng(7)
    return cusum_limits(
        measure_info(measure), _risks(rng, base, 2_000), RunSettings(cusum_paths=60)
    )


def _case_order_charts(
    run_id: int,
    measure: Measure,
    member_id: int,
    rng: np.random.Generator,
    *,
    months: int,
    per_month: int,
    base: float,
    worsens: bool,
    limits: tuple[CusumLimit, CusumLimit],
) -> list[dict]:
    """The ``racusum`` and ``vlad`` rows of one member, from simulated cases through the
    run's own payload builder (the odds quadruple in the last year when ``worsens``)."""
    labels = [f"{2023 + i // 12}-{i % 12 + 1:02d}" for i in range(months) for _ in range(per_month)]
    p = _risks(rng, base, len(labels))
    last_year = np.arange(len(labels)) >= len(labels) - 12 * per_month
    odds = p / (1 - p) * np.where(last_year & worsens, 4.0, 1.0)
    y = (rng.random(len(labels)) < odds / (1 + odds)).astype(float)
    rows = case_order_charts(
        measure_info(measure), member_id, y, p, labels=labels, limits=limits, odds=2.0
    )
    return [{"run_id": run_id, "measure_id": measure.id, **row} for row in rows]


@dataclass
class MeasureTemplate:
    code: str
    title: str
    measure_type: MeasureType
    level: DataLevel
    direction: Direction
    unit: str
    multiplier: float
    base: float
    volume: float  # per month (aggregate) or per year (patient)
    target: float | None


TEMPLATES = (
    MeasureTemplate(
        "HH",
        "Hand-hygiene compliance",
        MeasureType.PROPORTION,
        DataLevel.AGGREGATE,
        Direction.INCREASE,
        "%",
        100.0,
        0.8,
        120,
        0.9,
    ),
    MeasureTemplate(
        "CLABSI",
        "Central line infections",
        MeasureType.RATE,
        DataLevel.AGGREGATE,
        Direction.DECREASE,
        "per 1,000 line-days",
        1000.0,
        0.0012,
        400,
        0.0008,
    ),
    MeasureTemplate(
        "D2P",
        "Door-to-provider time",
        MeasureType.MEAN,
        DataLevel.AGGREGATE,
        Direction.DECREASE,
        "minutes",
        1.0,
        28.0,
        300,
        20.0,
    ),
    MeasureTemplate(
        "SURG",
        "30-day surgical mortality",
        MeasureType.RATIO,
        DataLevel.PATIENT,
        Direction.DECREASE,
        "%",
        100.0,
        0.03,
        250,
        None,
    ),
)


@dataclass
class World:
    """What tests need to find again."""

    collaborative_id: int
    run_id: int
    cycle_id: int
    member_ids: list[int]
    names: dict[int, str]
    blinded: dict[int, str]
    measure_ids: dict[str, int]
    group_code: str
    users: dict[str, int] = field(default_factory=dict)
    #: (member_id, measure code) pairs whose whole-cycle counts are small (1..10).
    small: set[tuple[int, str]] = field(default_factory=set)
    own_note: str = ""
    other_note: str = ""

    @property
    def member(self) -> int:
        """The member most tests read as."""
        return self.member_ids[0]

    @property
    def other(self) -> int:
        """Another member (its report must never be readable by the first)."""
        return self.member_ids[1]


def _hash(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _code(rng: np.random.Generator) -> str:
    letters = "ABCDEFGHJKMNPQRSTVWXYZ"
    return "Z" + "".join(rng.choice(list(letters), 3)) + str(int(rng.integers(10, 99)))


def build_world(
    session: Session,
    *,
    n_members: int = 12,
    n_measures: int = 4,
    months: int = 36,
    seed: int = 7,
    hostile: bool = False,
    min_cell_size: int = 11,
    published: bool = True,
) -> World:
    """Write a collaborative, a published (else locked) cycle and a succeeded run with every
    kind of result."""
    rng = np.random.default_rng(seed)
    collaborative = Collaborative(
        slug=f"rep-{seed}", name="Reporting Test Collaborative", min_cell_size=min_cell_size
    )
    session.add(collaborative)
    session.flush()
    cid = collaborative.id

    members = []
    used_codes: set[str] = set()
    for index in range(n_members):
        name = (
            f"{_NAMES[index % len(_NAMES)]} Hospital"
            if index < len(_NAMES)
            else f"{_NAMES[index % len(_NAMES)]} Hospital No {index}"
        )
        if hostile and index == 1:
            name = HOSTILE_MEMBER
        code = _code(rng)
        while code in used_codes:
            code = _code(rng)
        used_codes.add(code)
        members.append(
            Member(
                collaborative_id=cid,
                code=f"M{index + 1:04d}",
                name=name,
                blinded_code=code,
                org_type=OrgType.ACUTE_HOSPITAL,
                bed_size_band=BedSizeBand.FROM_100_TO_299,
                teaching=index % 3 == 0,
                rurality=Rurality.URBAN,
                region="North",
            )
        )
    session.add_all(members)
    session.flush()
    member_ids = [m.id for m in members]

    group = PeerGroup(collaborative_id=cid, code="TEACH", name="Teaching hospitals")
    session.add(group)
    session.flush()
    group_ids = [m.id for i, m in enumerate(members) if i % 3 == 0]
    session.execute(
        sa.insert(peer_group_members),
        [{"peer_group_id": group.id, "member_id": m} for m in group_ids],
    )

    measures: list[tuple[Measure, MeasureTemplate]] = []
    for index in range(n_measures):
        template = TEMPLATES[index % len(TEMPLATES)]
        suffix = "" if index < len(TEMPLATES) else str(index // len(TEMPLATES) + 1)
        title = template.title
        if hostile and index == 0:
            title = HOSTILE_MEASURE
        measure = Measure(
            collaborative_id=cid,
            code=f"{template.code}{suffix}",
            title=title,
            description=f"How the collaborative measures {template.title.lower()}.",
            measure_type=template.measure_type,
            level=template.level,
            numerator_definition=f"Numerator of {template.code}",
            denominator_definition=f"Denominator of {template.code}",
            direction=template.direction,
            unit=template.unit,
            multiplier=template.multiplier,
            target=template.target,
            risk_model=RISK_MODEL if template.level is DataLevel.PATIENT else None,
        )
        session.add(measure)
        measures.append((measure, template))
    session.flush()

    first = dt.date(2023, 1, 1)
    month_periods = []
    for i in range(months):
        start = dt.date(first.year + i // 12, i % 12 + 1, 1)
        nxt = dt.date(start.year + (start.month // 12), start.month % 12 + 1, 1)
        month_periods.append(
            ReportingPeriod(
                collaborative_id=cid,
                label=start.strftime("%Y-%m"),
                granularity=Granularity.MONTH,
                start_date=start,
                end_date=nxt - dt.timedelta(days=1),
            )
        )
    n_years = math.ceil(months / 12)
    year_periods = [
        ReportingPeriod(
            collaborative_id=cid,
            label=str(first.year + y),
            granularity=Granularity.YEAR,
            start_date=dt.date(first.year + y, 1, 1),
            end_date=dt.date(first.year + y, 12, 31),
        )
        for y in range(n_years)
    ]
    session.add_all(month_periods + year_periods)
    session.flush()
    last = month_periods[-1].end_date

    cycle = LearningCycle(
        collaborative_id=cid,
        code="C1",
        title="Cycle 2023-2025",
        status=CycleStatus.PUBLISHED if published else CycleStatus.LOCKED,
        first_period_start=first,
        last_period_end=last,
        window_opens_at=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
        deadline=dt.datetime(2026, 1, 31, tzinfo=dt.UTC),
        lock_date=dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC),
        locked_at=dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC),
    )
    session.add(cycle)
    session.flush()
    session.execute(
        sa.insert(cycle_measures),
        [{"cycle_id": cycle.id, "measure_id": m.id} for m, _ in measures],
    )

    run = BenchmarkRun(
        collaborative_id=cid,
        cycle_id=cycle.id,
        status=RunStatus.SUCCEEDED,
        settings=RunSettings(spc_mode="mdc").to_json(),
        snapshot_hash=_hash("snapshot", seed),
        started_at=dt.datetime(2026, 2, 2, 8, 0, tzinfo=dt.UTC),
        finished_at=dt.datetime(2026, 2, 2, 8, 5, tzinfo=dt.UTC),
    )
    session.add(run)
    session.flush()

    world = World(
        collaborative_id=cid,
        run_id=run.id,
        cycle_id=cycle.id,
        member_ids=member_ids,
        names={m.id: m.name for m in members},
        blinded={m.id: m.blinded_code for m in members},
        measure_ids={m.code: m.id for m, _ in measures},
        group_code=group.code,
    )

    effects = rng.normal(0, 0.25, size=(n_members, n_measures))
    volumes = rng.uniform(0.5, 1.6, size=n_members)
    if n_members > 3:
        effects[2, :] = 0.9  # a clear outlier in the bad direction
        volumes[3] = 0.04  # a tiny member: small counts everywhere
    submissions: list[dict] = []
    results: list[dict] = []
    charts: list[dict] = []
    summaries: list[dict] = []
    fits: list[dict] = []
    next_submission = [(session.scalar(sa.select(sa.func.max(Submission.id))) or 0) + 1]

    def submission(member_id: int, measure_id: int, period_id: int, corrected: bool) -> list[int]:
        ids = []
        versions = 2 if corrected else 1
        for version in range(1, versions + 1):
            sid = next_submission[0]
            next_submission[0] += 1
            submissions.append(
                {
                    "id": sid,
                    "member_id": member_id,
                    "measure_id": measure_id,
                    "period_id": period_id,
                    "version": version,
                    "status": SubmissionStatus.ACCEPTED
                    if version == versions
                    else SubmissionStatus.SUPERSEDED,
                    "content_hash": _hash(member_id, measure_id, period_id, version),
                    "predecessor_id": sid - 1 if version > 1 else None,
                    "reason": "corrected count" if version > 1 else None,
                    "created_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                }
            )
            ids.append(sid)
        return ids

    used: list[int] = []
    for k, (measure, template) in enumerate(measures):
        patient = template.level is DataLevel.PATIENT
        periods = year_periods if patient else month_periods
        higher_better = template.direction is Direction.INCREASE
        overall_rows = []
        all_values = []
        period_rows: list[tuple[int, int, float, float]] = []
        total_o = total_n = total_e = 0.0
        limits = _pooled_cusum_limits(measure, template.base) if patient else None
        for j, member in enumerate(members):
            # The last member misses a third of the periods of the first measure.
            member_periods = periods
            if j == n_members - 1 and k == 0:
                member_periods = periods[: max(1, len(periods) * 2 // 3)]
            o_sum = n_sum = e_sum = 0.0
            points = []
            for t, period in enumerate(member_periods):
                improvement = 0.15 * (t / max(len(periods) - 1, 1)) if j % 2 == 0 else 0.0
                n = max(1.0, round(template.volume * volumes[j] * rng.uniform(0.8, 1.2)))
                if template.measure_type is MeasureType.PROPORTION:
                    logit = (
                        math.log(template.base / (1 - template.base))
                        - effects[j, k]
                        + improvement * 3
                    )
                    p = 1 / (1 + math.exp(-logit))
                    o = float(rng.binomial(int(n), p))
                    value = o / n
                    se = math.sqrt(max(value * (1 - value), 1e-4) / n)
                    expected = None
                elif template.measure_type is MeasureType.RATE:
                    lam = template.base * math.exp(effects[j, k] - improvement)
                    o = float(rng.poisson(lam * n))
                    value = o / n
                    se = math.sqrt(max(o, 1)) / n
                    expected = None
                elif template.measure_type is MeasureType.MEAN:
                    value = template.base * math.exp(
                        effects[j, k] * 0.3 - improvement
                    ) + rng.normal(0, 1)
                    o = None
                    se = 4.0 / math.sqrt(n)
                    expected = None
                else:
                    p = template.base * math.exp(effects[j, k])
                    o = float(rng.binomial(int(n), min(p, 0.9)))
                    expected = n * template.base
                    value = o / expected * template.base
                    se = math.sqrt(max(o, 1)) / expected * template.base
                if o is not None:
                    o_sum += o
                    e_sum += expected or 0.0
                n_sum += n
                points.append((period, o, n, expected, value, se))
                subs = submission(member.id, measure.id, period.id, corrected=(j == 0 and t == 1))
                used.append(subs[-1])
            values = [p[4] for p in points]
            centre = float(np.mean(values))
            signals_at = {len(points) - 1} if j == 0 else set()
            chart_points = []
            for t, (period, o, n, expected, value, se) in enumerate(points):
                period_rows.append((member.id, period.start_date.year, value, n))
                results.append(
                    {
                        "run_id": run.id,
                        "measure_id": measure.id,
                        "member_id": member.id,
                        "period_id": period.id,
                        "observed": o,
                        "expected": expected,
                        "denominator": n,
                        "value": value,
                        "ci95_low": value - 1.96 * se,
                        "ci95_high": value + 1.96 * se,
                        "ci998_low": value - 3.09 * se,
                        "ci998_high": value + 3.09 * se,
                        "shrunk_value": None,
                        "outlier_status": None,
                        "decile": None,
                        "distance_to_abc": None,
                        "payload": PeriodPayload(period=period.label, n=n, oe=None).to_json(),
                    }
                )
                sd = float(np.std(values)) or 0.01
                # Patient-level charts plot O/E, as the engine stores them.
                shown = value / template.base if patient else value
                chart_centre = centre / template.base if patient else centre
                chart_sd = sd / template.base if patient else sd
                chart_points.append(
                    {
                        "x": period.label,
                        "value": shown,
                        "n": n,
                        "cl": chart_centre,
                        "ucl": chart_centre + 3 * chart_sd,
                        "lcl": chart_centre - 3 * chart_sd,
                        "phase": 1,
                        "excluded": False,
                        "signals": ["astronomical point"] if t in signals_at else [],
                    }
                )
            charts.append(
                {
                    "run_id": run.id,
                    "measure_id": measure.id,
                    "member_id": member.id,
                    "kind": "control",
                    "payload": ControlChartPayload(
                        chart=ControlChart.from_dict(
                            {
                                "chart": "p"
                                if template.measure_type is MeasureType.PROPORTION
                                else "i",
                                "mode": "mdc",
                                "points": chart_points,
                                # The engine's icon names: improvement on the better side.
                                "variation_icon": (
                                    "improvement_high" if higher_better else "improvement_low"
                                )
                                if j % 2 == 0
                                else "common_cause",
                                "assurance_icon": "inconsistent" if template.target else None,
                            }
                        ),
                        measure=measure.code,
                        member_id=member.id,
                        member=member.code,
                        chart_reason="planted by the test world",
                        multiplier=1.0 if patient else template.multiplier,
                        unit="O/E" if patient else template.unit,
                        series="monthly" if not patient else "yearly",
                        source="test world",
                        ratio=patient,
                    ).to_json(),
                }
            )
            if patient:
                # Members with a data use agreement (here: all) also get their cases in order;
                # the first member's odds quadruple in the last year, so its upper CUSUM signals.
                charts += _case_order_charts(
                    run.id,
                    measure,
                    member.id,
                    rng,
                    months=months,
                    per_month=max(5, round(template.volume * volumes[j] / 12)),
                    base=template.base,
                    worsens=j == 0,
                    limits=limits,
                )
            if template.measure_type is MeasureType.MEAN:
                value = float(np.average(values, weights=[p[2] for p in points]))
                se = 4.0 / math.sqrt(n_sum)
                observed = None
            elif template.measure_type is MeasureType.RATIO:
                value = o_sum / e_sum * template.base
                se = math.sqrt(max(o_sum, 1)) / e_sum * template.base
                observed = o_sum
            else:
                value = o_sum / n_sum
                se = (
                    math.sqrt(max(value * (1 - value), 1e-4) / n_sum)
                    if template.measure_type is MeasureType.PROPORTION
                    else math.sqrt(max(o_sum, 1)) / n_sum
                )
                observed = o_sum
            if observed is not None and 1 <= observed < min_cell_size:
                world.small.add((member.id, measure.code))
            if template.measure_type is MeasureType.MEAN and n_sum < min_cell_size:
                world.small.add((member.id, measure.code))
            total_o += observed or 0.0
            total_n += n_sum
            total_e += e_sum
            all_values.append(value)
            overall_rows.append(
                {
                    "run_id": run.id,
                    "measure_id": measure.id,
                    "member_id": member.id,
                    "period_id": None,
                    "observed": observed,
                    "expected": e_sum or None,
                    "denominator": n_sum,
                    "value": value,
                    "ci95_low": value - 1.96 * se,
                    "ci95_high": value + 1.96 * se,
                    "ci998_low": value - 3.09 * se,
                    "ci998_high": value + 3.09 * se,
                    "shrunk_value": value,
                    "payload": {
                        "n": n_sum,
                        "oe": value / template.base if patient else None,
                        "oe_ci": {
                            "95": (
                                (value - 1.96 * se) / template.base,
                                (value + 1.96 * se) / template.base,
                            ),
                        }
                        if patient
                        else {},
                        # The shrunk estimate (here the value itself) with a narrower interval.
                        "shrunk_oe": value / template.base if patient else None,
                        "shrunk_oe_ci95": (
                            (value - 1.5 * se) / template.base,
                            (value + 1.5 * se) / template.base,
                        )
                        if patient
                        else None,
                        "shrunk_ci95": (value - 1.5 * se, value + 1.5 * se),
                        "interval_method": "normal (test world)",
                        "funnel_scale": "oe" if patient else "value",
                    },
                }
            )
        rate = (
            float(np.mean(all_values))
            if template.measure_type is MeasureType.MEAN
            else (total_o / total_e * template.base if total_e else total_o / total_n)
        )
        way = "increase" if higher_better else "decrease"
        ordered = sorted(all_values, reverse=higher_better)
        abc = float(np.mean(ordered[: max(1, len(ordered) // 10 + 1)]))
        ranks, deciles, _ = peer.decile_ranks(all_values, improvement=way)
        in_group = [r["member_id"] in group_ids for r in overall_rows]
        group_ranks, group_deciles, _ = peer.decile_ranks(
            [v for v, inside in zip(all_values, in_group, strict=True) if inside],
            improvement=way,
        )
        # Who reaches the benchmark and how far short the others are: the run's own writer.
        standings = benchmark_standings(np.array(all_values), abc, higher_is_better=higher_better)
        group_abc = float(
            max(v for v, inside in zip(all_values, in_group, strict=True) if inside)
            if higher_better
            else min(v for v, inside in zip(all_values, in_group, strict=True) if inside)
        )
        group_standings = benchmark_standings(
            np.array([v for v, inside in zip(all_values, in_group, strict=True) if inside]),
            group_abc,
            higher_is_better=higher_better,
        )
        group_position = 0
        for i, row in enumerate(overall_rows):
            value = row["value"]
            low, high = row["ci998_low"], row["ci998_high"]
            if low > rate:
                status = "better" if higher_better else "worse"
            elif high < rate:
                status = "worse" if higher_better else "better"
            else:
                status = "as-expected"
            row["outlier_status"] = status
            row["decile"] = int(deciles[i])
            row["distance_to_abc"] = standings[i].distance
            if not patient:
                # As the run stores it: the value over the collaborative's, with its interval.
                row["payload"]["oe"] = value / rate
                row["payload"]["oe_ci"] = {"95": (row["ci95_low"] / rate, row["ci95_high"] / rate)}
            peers_of = {}
            if in_group[i]:
                peers_of["TEACH"] = PeerStanding(
                    decile=int(group_deciles[group_position]),
                    rank=int(group_ranks[group_position]),
                    ranked=len(group_ranks),
                    benchmark=group_standings[group_position],
                )
                group_position += 1
            row["payload"] = MemberPayload(
                **row["payload"],
                status=StatusPair(alarm=status),
                rank=int(ranks[i]),
                ranked=len(ranks),
                peers=peers_of,
                benchmark=standings[i],
            ).to_json()
        results.extend(overall_rows)
        common = {
            "measure": measure.code,
            "measure_type": template.measure_type.value,
            "level": template.level.value,
            "direction": template.direction.value,
            "multiplier": template.multiplier,
            "unit": template.unit,
            "target": template.target,
            "minimum_volume": 0,
            "min_contributors": 5,
        }
        funnel = None
        if template.measure_type in {MeasureType.PROPORTION, MeasureType.RATIO}:
            # Limit curves in the stored format (O/E for patient-level measures, else the
            # value), the adjusted ones 1.3 times wider: they decided the statuses.
            centre = 1.0 if patient else rate
            xs = [r["expected"] if patient else r["denominator"] for r in overall_rows]
            grid = np.geomspace(max(min(xs) * 0.5, 1.0), max(xs) * 1.1, 60)
            unadjusted, adjusted = {}, {}
            for key, z in (("95", 1.96), ("99.8", 3.09)):
                half = z / np.sqrt(grid) if patient else z * np.sqrt(rate * (1 - rate) / grid)
                unadjusted[key] = list(zip(grid, centre - half, centre + half, strict=True))
                adjusted[key] = list(
                    zip(grid, centre - 1.3 * half, centre + 1.3 * half, strict=True)
                )
            funnel = FunnelPayload(
                method="shmi" if patient else "spiegelhalter",
                transform="log" if patient else "arcsine",
                scale="oe" if patient else "value",
                x="expected" if patient else "denominator",
                target=centre,
                phi=1.69,
                tau2=None,
                overdispersed=True,
                adjusted=True,
                note="",
                units_used_for_dispersion=n_members,
                unadjusted_limits=unadjusted,
                adjusted_limits=adjusted,
            )
        summaries.append(
            {
                "run_id": run.id,
                "measure_id": measure.id,
                "scope": ResultScope.COLLABORATIVE,
                "peer_group_id": None,
                "n_members": n_members,
                "observed": total_o,
                "expected": total_e or None,
                "denominator": total_n,
                "rate": rate,
                "abc": abc,
                "payload": SummaryPayload(
                    **common,
                    contributors=n_members,
                    distribution=Distribution(**methods.distribution(np.array(all_values))),
                    at_benchmark=sum(bool(standing.reaches) for standing in standings),
                    # The collaborative by year: case-weighted, pooled by the stats core.
                    years=[
                        YearValue(year=p.group, value=p.value, members=p.members)
                        for p in pooling.pool(*zip(*period_rows, strict=True), kind="mean")
                    ],
                    funnel=funnel,
                    overall=template.base if patient else rate,
                ).to_json(),
            }
        )
        group_values = [v for v, m in zip(all_values, members, strict=True) if m.id in group_ids]
        summaries.append(
            {
                "run_id": run.id,
                "measure_id": measure.id,
                "scope": ResultScope.PEER_GROUP,
                "peer_group_id": group.id,
                "n_members": len(group_values),
                "observed": None,
                "expected": None,
                "denominator": None,
                "rate": float(np.mean(group_values)),
                "abc": group_abc,
                "payload": SummaryPayload(
                    **common,
                    scope_code=group.code,
                    contributors=len(group_values),
                    at_benchmark=sum(bool(standing.reaches) for standing in group_standings),
                    distribution=Distribution(**methods.distribution(np.array(group_values))),
                ).to_json(),
            }
        )
        if template.level is DataLevel.PATIENT:
            fits.append(
                {
                    "run_id": run.id,
                    "measure_id": measure.id,
                    "family": "binomial",
                    "n": int(total_n),
                    "events": total_o,
                    "specification": RISK_MODEL,
                    "coefficients": [
                        {"term": "Intercept", "estimate": -3.5, "ci_low": -3.9, "ci_high": -3.1},
                        {"term": "age", "estimate": 0.031, "ci_low": 0.02, "ci_high": 0.04},
                        {"term": "emergency", "estimate": 0.82, "ci_low": 0.6, "ci_high": 1.04},
                    ],
                    "diagnostics": {
                        "c_statistic": 0.784,
                        "c_statistic_ci": [0.752, 0.816],
                        "hosmer_lemeshow": {"statistic": 7.9, "pvalue": 0.44},
                        "brier": 0.0281,
                        "calibration": [
                            {"decile": d, "observed": 2.0 * d, "expected": 2.1 * d}
                            for d in range(1, 11)
                        ],
                    },
                }
            )

    session.execute(sa.insert(Submission), submissions)
    session.execute(
        sa.insert(run_submissions), [{"run_id": run.id, "submission_id": s} for s in used]
    )
    session.execute(sa.insert(MemberResult), results)
    session.execute(sa.insert(MeasureSummary), summaries)
    session.execute(sa.insert(StoredChart), charts)
    if fits:
        session.execute(sa.insert(RiskModelFitRecord), fits)

    first_measure = measures[0][0]
    world.own_note = "Introduced bedside dispensers"
    world.other_note = "Secret change at another hospital"
    session.add_all(
        [
            Annotation(
                collaborative_id=cid,
                member_id=member_ids[0],
                measure_id=first_measure.id,
                kind=AnnotationKind.CHANGE,
                occurred_on=dt.date(2024, 7, 1),
                label=world.own_note,
                body=HOSTILE_NOTE if hostile else "Dispensers at every bed.",
                starts_phase=False,
            ),
            Annotation(
                collaborative_id=cid,
                member_id=member_ids[1],
                measure_id=first_measure.id,
                kind=AnnotationKind.CHANGE,
                occurred_on=dt.date(2024, 3, 1),
                label=world.other_note,
                body="Not for other members' eyes.",
            ),
        ]
    )
    users = [
        User(collaborative_id=cid, email=f"coordinator-{seed}@example.test", role=Role.COORDINATOR),
        User(
            collaborative_id=cid,
            email=f"officer-a-{seed}@example.test",
            role=Role.QUALITY_OFFICER,
            member_id=member_ids[0],
        ),
        User(
            collaborative_id=cid,
            email=f"viewer-a-{seed}@example.test",
            role=Role.MEMBER_VIEWER,
            member_id=member_ids[0],
        ),
        User(
            collaborative_id=cid,
            email=f"officer-b-{seed}@example.test",
            role=Role.QUALITY_OFFICER,
            member_id=member_ids[1],
        ),
    ]
    session.add_all(users)
    session.flush()
    world.users = {
        "coordinator": users[0].id,
        "officer": users[1].id,
        "viewer": users[2].id,
        "other_officer": users[3].id,
    }
    session.commit()
    return world
