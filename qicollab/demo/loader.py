"""Load the generated demo collaborative into the database, with demo users for every role."""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from qicollab.accounts.models import Role, User
from qicollab.accounts.passwords import hash_password
from qicollab.audit.services import record
from qicollab.cycles.models import (
    CycleStatus,
    Granularity,
    LearningCycle,
    LearningSession,
    ReportingPeriod,
)
from qicollab.demo.generator import DemoCollaborative
from qicollab.demo.improvement import seed_improvement
from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.members.models import (
    BedSizeBand,
    Collaborative,
    DeidProfile,
    Member,
    OrgType,
    PeerGroup,
    Rurality,
)
from qicollab.submissions.bulk import insert_patient_records
from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionStatus,
)

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo, documented as such
#: The demo "today": the 2023-2025 cycle is locked, the 2026 cycle is open for submissions.
HISTORY_CYCLE = "C2023-25"
OPEN_CYCLE = "C2026"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A demo account, printed for the newcomer."""

    email: str
    role: str
    member: str | None
    password: str = DEMO_PASSWORD


class DemoAlreadyLoadedError(RuntimeError):
    """The database already holds the demo collaborative."""


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def content_hash(payload: object) -> str:
    """SHA-256 of a canonical JSON form: equal content, equal hash."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _blinded_code(index: int, seed: int) -> str:
    """Stable, non-sequential codes that reveal nothing about the member."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest().upper()
    return f"P-{digest[:4]}"


def load(
    session: Session,
    demo: DemoCollaborative,
    *,
    storage: Path,
    progress: Callable[[str, int], None] | None = None,
) -> list[DemoLogin]:
    """Write the demo collaborative in the caller's transaction; returns the demo logins."""
    step = progress or (lambda _label, _n: None)
    if session.scalar(sa.select(Collaborative.id).where(Collaborative.slug == DEMO_SLUG)):
        msg = "the demo collaborative is already loaded"
        raise DemoAlreadyLoadedError(msg)

    collaborative = Collaborative(
        slug=DEMO_SLUG,
        name="Lakeshore Surgical Quality Collaborative (demo)",
        deid_profile=DeidProfile.LIMITED_DATA_SET,
        min_cell_size=11,
        default_methods={
            "trim": 0.1,
            "shrinkage": "empirical-bayes",
            "spc_mode": "mdc",
        },
    )
    session.add(collaborative)
    session.flush()

    members: dict[str, Member] = {}
    for index, spec in enumerate(demo.members):
        members[spec.code] = Member(
            collaborative_id=collaborative.id,
            code=spec.code,
            name=spec.name,
            blinded_code=_blinded_code(index, demo.truth.seed),
            org_type=OrgType(spec.org_type),
            bed_size_band=BedSizeBand(spec.bed_size_band),
            beds=spec.beds,
            teaching=spec.teaching,
            rurality=Rurality(spec.rurality),
            region=spec.region,
            has_data_use_agreement=spec.has_data_use_agreement,
            joined_on=dt.date(2022, 10, 1),
        )
    session.add_all(members.values())
    groups = [
        ("TEACH", "Teaching hospitals", lambda m: m.teaching, {"teaching": ["true"]}),
        (
            "URBAN-COMM",
            "Urban community hospitals",
            lambda m: not m.teaching and m.rurality == "urban",
            {"teaching": ["false"], "rurality": ["urban"]},
        ),
        (
            "RURAL",
            "Rural and critical-access hospitals",
            lambda m: m.rurality == "rural",
            {"rurality": ["rural"]},
        ),
    ]
    for code, name, predicate, criteria in groups:
        session.add(
            PeerGroup(
                collaborative_id=collaborative.id,
                code=code,
                name=name,
                criteria=criteria,
                members=[members[s.code] for s in demo.members if predicate(s)],
            )
        )
    step("members and peer groups", len(members))

    measures: dict[str, Measure] = {}
    for spec in demo.measures:
        measures[spec.code] = Measure(
            collaborative_id=collaborative.id,
            code=spec.code,
            title=spec.title,
            description=spec.description,
            measure_type=MeasureType(spec.measure_type),
            level=DataLevel(spec.level),
            numerator_definition=spec.numerator_definition,
            denominator_definition=spec.denominator_definition,
            exclusion_definition=spec.exclusion_definition,
            direction=Direction(spec.direction),
            unit=spec.unit,
            multiplier=spec.multiplier,
            target=spec.target,
            minimum_volume=spec.minimum_volume,
            risk_model=spec.risk_model.to_json() if spec.risk_model else None,
        )
    session.add_all(measures.values())

    # Monthly periods for 2023-2026 and yearly periods for patient-level submissions.
    periods: dict[str, ReportingPeriod] = {}
    for year in range(demo.months[0].year, demo.months[-1].year + 2):
        periods[str(year)] = ReportingPeriod(
            collaborative_id=collaborative.id,
            label=str(year),
            granularity=Granularity.YEAR,
            start_date=dt.date(year, 1, 1),
            end_date=dt.date(year, 12, 31),
        )
        for month in range(1, 13):
            start = dt.date(year, month, 1)
            periods[f"{year}-{month:02d}"] = ReportingPeriod(
                collaborative_id=collaborative.id,
                label=f"{year}-{month:02d}",
                granularity=Granularity.MONTH,
                start_date=start,
                end_date=_month_end(start),
            )
    session.add_all(periods.values())
    session.flush()
    step("measures and periods", len(measures) + len(periods))

    logins = _add_users(session, collaborative, members)
    coordinator = session.scalar(sa.select(User).where(User.role == Role.COORDINATOR))
    last_year = demo.months[-1].year
    session.add_all(
        [
            LearningCycle(
                collaborative_id=collaborative.id,
                code=HISTORY_CYCLE,
                title=f"Baseline and improvement, {demo.months[0].year}-{last_year}",
                status=CycleStatus.LOCKED,
                first_period_start=demo.months[0],
                last_period_end=_month_end(demo.months[-1]),
                window_opens_at=dt.datetime(last_year, 12, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(last_year + 1, 1, 31, 23, 59, tzinfo=dt.UTC),
                lock_date=dt.datetime(last_year + 1, 2, 15, tzinfo=dt.UTC),
                locked_at=dt.datetime(last_year + 1, 2, 15, tzinfo=dt.UTC),
                locked_by_id=coordinator.id if coordinator else None,
                measures=list(measures.values()),
            ),
            LearningCycle(
                collaborative_id=collaborative.id,
                code=OPEN_CYCLE,
                title=f"Learning cycle {last_year + 1}",
                status=CycleStatus.OPEN,
                first_period_start=dt.date(last_year + 1, 1, 1),
                last_period_end=dt.date(last_year + 1, 12, 31),
                window_opens_at=dt.datetime(last_year + 1, 1, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(last_year + 2, 1, 31, 23, 59, tzinfo=dt.UTC),
                measures=list(measures.values()),
            ),
        ]
    )
    session.flush()
    history = session.scalar(sa.select(LearningCycle).where(LearningCycle.code == HISTORY_CYCLE))
    assert history is not None
    session.add(
        LearningSession(
            cycle_id=history.id,
            held_on=dt.date(last_year + 1, 3, 12),
            title="Spring learning session: what the top performers changed",
        )
    )
    seed_improvement(
        session,
        collaborative_id=collaborative.id,
        members=members,
        measures=measures,
        truth=demo.truth,
        history=history,
        last_month=demo.months[-1],
    )
    step("change package, PDSA ramps, progress scores, learning sessions", len(members))

    n_aggregate = _load_aggregate(session, demo.aggregate, members, measures, periods)
    step("aggregate submissions", n_aggregate)
    n_patients = _load_patients(session, demo, members, measures, periods)
    step("patient-level records", n_patients)

    record(
        session,
        "demo.loaded",
        actor="cli",
        object_type="collaborative",
        object_id=collaborative.id,
        collaborative_id=collaborative.id,
        details={"seed": demo.truth.seed, "patients": n_patients, "aggregate": n_aggregate},
    )
    truth_path = storage / "demo" / "truth.json"
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    truth_path.write_text(json.dumps(demo.truth.to_json(), indent=2, sort_keys=True))
    return logins


#: (email, role, member code) of the demo accounts.
_ACCOUNTS = (
    ("admin@demo.qicollab.org", Role.ADMIN, None),
    ("coordinator@demo.qicollab.org", Role.COORDINATOR, None),
    ("officer.h01@demo.qicollab.org", Role.QUALITY_OFFICER, "H01"),
    ("viewer.h01@demo.qicollab.org", Role.MEMBER_VIEWER, "H01"),
    ("officer.h02@demo.qicollab.org", Role.QUALITY_OFFICER, "H02"),
    ("viewer.h02@demo.qicollab.org", Role.MEMBER_VIEWER, "H02"),
)


def demo_logins() -> list[DemoLogin]:
    """The demo accounts every role has, with the shared demo password."""
    return [DemoLogin(email, role.value, member) for email, role, member in _ACCOUNTS]


def _add_users(
    session: Session, collaborative: Collaborative, members: dict[str, Member]
) -> list[DemoLogin]:
    password_hash = hash_password(DEMO_PASSWORD)
    for email, role, member in _ACCOUNTS:
        session.add(
            User(
                collaborative_id=collaborative.id,
                email=email,
                display_name=email.split("@")[0].replace(".", " ").title(),
                password_hash=password_hash,
                role=role,
                member_id=members[member].id if member else None,
            )
        )
    session.flush()
    return demo_logins()


def _insert_accepted(session: Session, submissions: list[tuple[int, int, int, str]]) -> list[int]:
    """First versions, accepted, of (member id, measure id, period id, content hash), in one
    insert; their ids in the same order."""
    when = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)  # before the history cycle's deadline
    return list(
        session.scalars(
            sa.insert(Submission).returning(Submission.id, sort_by_parameter_order=True),
            [
                {
                    "member_id": member_id,
                    "measure_id": measure_id,
                    "period_id": period_id,
                    "version": 1,
                    "status": SubmissionStatus.ACCEPTED,
                    "content_hash": digest,
                    "submitted_at": when,
                    "reviewed_at": when,
                    "created_at": when,
                }
                for member_id, measure_id, period_id, digest in submissions
            ],
        )
    )


def _load_aggregate(
    session: Session,
    aggregate: pd.DataFrame,
    members: dict[str, Member],
    measures: dict[str, Measure],
    periods: dict[str, ReportingPeriod],
) -> int:
    rows = aggregate.astype(object).where(aggregate.notna(), None).to_dict("records")
    ids = _insert_accepted(
        session,
        [
            (
                members[row["member"]].id,
                measures[row["measure"]].id,
                periods[row["period"].strftime("%Y-%m")].id,
                content_hash({k: row[k] for k in ("numerator", "denominator", "value")}),
            )
            for row in rows
        ],
    )
    session.execute(
        sa.insert(AggregateValue),
        [
            {
                "submission_id": submission_id,
                "numerator": row["numerator"],
                "denominator": row["denominator"],
                "value": row["value"],
            }
            for submission_id, row in zip(ids, rows, strict=True)
        ],
    )
    return len(rows)


def _load_patients(
    session: Session,
    demo: DemoCollaborative,
    members: dict[str, Member],
    measures: dict[str, Measure],
    periods: dict[str, ReportingPeriod],
) -> int:
    patients = demo.patients
    covariates = {
        spec.code: list(spec.risk_model.covariate_names)
        for spec in demo.measures
        if spec.risk_model is not None
    }
    keys = patients[["member", "measure", "year"]].drop_duplicates().to_dict("records")
    groups = dict(tuple(patients.groupby(["member", "measure", "year"], sort=False)))
    ids = _insert_accepted(
        session,
        [
            (
                members[key["member"]].id,
                measures[key["measure"]].id,
                periods[str(key["year"])].id,
                hashlib.sha256(
                    pd.util.hash_pandas_object(
                        groups[(key["member"], key["measure"], key["year"])], index=False
                    )
                    .to_numpy()
                    .tobytes()
                ).hexdigest(),
            )
            for key in keys
        ],
    )

    def rows() -> Any:
        for submission_id, key in zip(ids, keys, strict=True):
            frame = groups[(key["member"], key["measure"], key["year"])]
            with_month = members[key["member"]].has_data_use_agreement
            names = covariates[key["measure"]]
            factors = frame[names].to_dict("records")
            for case_key, month, sequence, outcome, factor in zip(
                frame["case_key"].tolist(),
                frame["month"].tolist(),
                frame["sequence"].tolist(),
                frame["outcome"].tolist(),
                factors,
                strict=True,
            ):
                yield (
                    submission_id,
                    case_key,
                    int(key["year"]),
                    month if with_month else None,
                    sequence,
                    outcome,
                    {k: (v if isinstance(v, str) else int(v)) for k, v in factor.items()},
                )

    return insert_patient_records(session.connection(), rows())
