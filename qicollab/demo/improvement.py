"""The demo's improvement work, consistent with the generator's known truth.

The hospitals that improved (``truth.improvers``) each ran a ramp of three PDSA cycles per
improving measure: a small test, a wider test, and a last cycle adopted on the change date, which
starts a new phase on the measure's chart (so the charts show the phase exactly where the data
change). Some other hospitals tested a change and abandoned it. Every team scores its progress
each month of the last eighteen and the faculty scores it too; improvers climb the scale, the
others stay low. Learning sessions have agendas, material and attendance, with action periods
between them. Everything goes through the improvement services, so it is screened and audited
as a user's input would be.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np

from qicollab.cycles.models import LearningSession
from qicollab.improvement.models import ActDecision, MaterialKind, Scorer
from qicollab.improvement.package import ChangePackageService
from qicollab.improvement.pdsa import PdsaDraft, PdsaService
from qicollab.improvement.progress import ProgressService
from qicollab.improvement.sessions import SessionService

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.demo.generator import DemoTruth
    from qicollab.measures.models import Measure
    from qicollab.members.models import Member
    from qicollab.schedule.calendar import LearningCycle

ACTOR = "demo"

#: (primary driver, secondary driver, idea code, idea title, measure, evidence title, url)
_IDEAS = (
    (
        "Reliable infection prevention",
        "Hand hygiene at every opportunity",
        "HH1",
        "Alcohol hand-rub at the point of care with monthly audit and feedback",
        "HH",
        "WHO guidelines on hand hygiene in health care (2009)",
        "https://www.who.int/publications/i/item/9789241597906",
    ),
    (
        "Reliable infection prevention",
        "Sterile central-line insertion and care",
        "CL1",
        "Insertion checklist with the authority to stop a non-sterile insertion",
        "CLABSI",
        "Pronovost et al., NEJM 2006: an intervention to decrease catheter-related infections",
        "https://doi.org/10.1056/NEJMoa061115",
    ),
    (
        "Early recognition of deterioration",
        "Sepsis recognised and treated within the hour",
        "SE1",
        "Nurse-initiated sepsis screening and hour-one bundle",
        "SEPSIS",
        "Surviving Sepsis Campaign guidelines 2021",
        "https://doi.org/10.1007/s00134-021-06506-y",
    ),
    (
        "Early recognition of deterioration",
        "Patients seen promptly on arrival",
        "ED1",
        "Provider in triage during the busiest hours",
        "D2P",
        "AHRQ Emergency Severity Index handbook",
        "https://www.ahrq.gov/patient-safety/settings/emergency-dept/esi.html",
    ),
    (
        "Safe mobility",
        "Every patient's fall risk known and acted on",
        "FA1",
        "Falls risk assessment on admission with an individual prevention plan",
        "FALLS",
        "NICE clinical guideline CG161: falls in older people",
        "https://www.nice.org.uk/guidance/cg161",
    ),
)

#: The three cycles of an improver's ramp: (title prefix, days before the change date it starts).
_RAMP = (("Small test on one unit", 120), ("Wider test on three units", 75), ("Hospital-wide", 35))


def _package(session: Session, collaborative_id: int) -> dict[str, int]:
    """The driver diagram; returns change idea ids by measure code."""
    service = ChangePackageService(session, collaborative_id)
    service.save_aim(
        aim="Halve preventable harm and delays in member hospitals within three years",
        description="Hand hygiene, line infections, sepsis care, falls and emergency waits.",
        actor=ACTOR,
    )
    primaries: dict[str, int] = {}
    secondaries: dict[str, int] = {}
    ideas: dict[str, int] = {}
    for primary, secondary, code, title, measure, source, url in _IDEAS:
        if primary not in primaries:
            primaries[primary] = service.save_driver(title=primary, actor=ACTOR).id
        if secondary not in secondaries:
            secondaries[secondary] = service.save_driver(
                title=secondary, parent_id=primaries[primary], actor=ACTOR
            ).id
        ideas[measure] = service.save_idea(
            driver_id=secondaries[secondary],
            code=code,
            title=title,
            evidence=[(source, url)],
            actor=ACTOR,
        ).id
    return ideas


def _ramps(
    session: Session,
    *,
    collaborative_id: int,
    members: dict[str, Member],
    measures: dict[str, Measure],
    ideas: dict[str, int],
    truth: DemoTruth,
    rng: np.random.Generator,
) -> None:
    service = PdsaService(session, collaborative_id)
    change = truth.change_date
    for code in truth.improvers:
        member = members[code]
        for measure_code, idea_id in ideas.items():
            previous = None
            for index, (prefix, days) in enumerate(_RAMP):
                starts = change - dt.timedelta(days=days)
                last = index == len(_RAMP) - 1
                draft = PdsaDraft(
                    title=f"{prefix}: {measure_code} change",
                    starts_on=starts,
                    ends_on=change - dt.timedelta(days=1) if last else starts + dt.timedelta(28),
                    measure_ids=(measures[measure_code].id,),
                    change_idea_id=idea_id,
                    follows_id=previous,
                    objective="Test the change package idea at our hospital",
                    prediction="The process measure improves within four weeks",
                    what_was_done="Ran the change for four weeks with a daily huddle",
                    observations="Staff adopted it faster on units with a local champion",
                    study="Better than predicted" if index else "As predicted on the test unit",
                    decision=ActDecision.ADOPT if last else ActDecision.ADAPT,
                    decided_on=change if last else starts + dt.timedelta(days=30),
                    next_steps="Sustain and audit monthly" if last else "Widen the test",
                    starts_phase=last,
                )
                previous = service.create(member.id, draft, actor=ACTOR).id
    others = [c for c in sorted(members) if c not in truth.improvers]
    for code in rng.choice(others, size=min(6, len(others)), replace=False):
        measure_code = str(rng.choice(sorted(ideas)))
        starts = change - dt.timedelta(days=int(rng.integers(30, 150)))
        service.create(
            members[str(code)].id,
            PdsaDraft(
                title=f"Trial of the {measure_code} change",
                starts_on=starts,
                measure_ids=(measures[measure_code].id,),
                change_idea_id=ideas[measure_code],
                study="No change in the process measure; too few staff trained",
                decision=ActDecision.ABANDON,
                decided_on=starts + dt.timedelta(days=42),
            ),
            actor=ACTOR,
        )


def _months(last: dt.date, count: int) -> list[dt.date]:
    months = []
    year, month = last.year, last.month
    for _ in range(count):
        months.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def _scores(
    session: Session,
    *,
    collaborative_id: int,
    members: dict[str, Member],
    truth: DemoTruth,
    last_month: dt.date,
    rng: np.random.Generator,
) -> None:
    service = ProgressService(session, collaborative_id)
    months = _months(last_month, 18)
    for code in sorted(members):
        improver = code in truth.improvers
        level = 3 if improver else 2  # halves: 1.5 and 1.0
        for index, month in enumerate(months):
            if (improver and month >= truth.change_date and level < 8 and index % 3 == 0) or (
                not improver and level < 5 and rng.random() < 0.08
            ):
                level += 1
            team = min(10, level + int(rng.random() < 0.3))
            service.score(members[code].id, month, Scorer.FACULTY, level / 2, actor=ACTOR)
            if month == months[-1] and not improver and rng.random() < 0.5:
                continue  # some teams have not reported for the last month yet
            service.submit_report(
                members[code].id,
                month,
                tested="Continued the adopted changes" if improver else "Reviewed our data",
                learned="Monthly feedback keeps the change going" if improver else "",
                barriers="" if improver else "Staffing and competing priorities",
                score=team / 2,
                actor=ACTOR,
            )


def _sessions(
    session: Session,
    *,
    collaborative_id: int,
    history: LearningCycle,
    members: dict[str, Member],
    truth: DemoTruth,
    rng: np.random.Generator,
) -> None:
    change = truth.change_date
    held = [
        (change - dt.timedelta(days=150), "Learning session 1: the change package"),
        (change + dt.timedelta(days=90), "Learning session 2: what the improvers changed"),
    ]
    rows = [LearningSession(cycle_id=history.id, held_on=day, title=title) for day, title in held]
    session.add_all(rows)
    session.flush()
    service = SessionService(session, collaborative_id)
    for row in rows:
        for time, title, presenter in (
            ("09:30", "Welcome and the collaborative's data", "Faculty"),
            ("10:15", "Storyboards: PDSA ramps from member teams", "Member teams"),
            ("13:00", "Planning the next action period", "Faculty"),
        ):
            service.add_agenda_item(
                row.id, title=title, starts_at=time, presenter=presenter, actor=ACTOR
            )
        service.attach(row.id, MaterialKind.CHANGE_PACKAGE, actor=ACTOR)
        people = {m.id: int(rng.integers(0, 5)) for m in members.values()}
        for code in truth.improvers:
            people[members[code].id] = max(2, people[members[code].id])
        service.record_attendance(row.id, people, actor=ACTOR)


def seed_improvement(
    session: Session,
    *,
    collaborative_id: int,
    members: dict[str, Member],
    measures: dict[str, Measure],
    truth: DemoTruth,
    history: LearningCycle,
    last_month: dt.date,
) -> None:
    """The change package, PDSA ramps, progress scores, monthly reports and learning sessions."""
    rng = np.random.default_rng(truth.seed + 12)
    ideas = _package(session, collaborative_id)
    _ramps(
        session,
        collaborative_id=collaborative_id,
        members=members,
        measures=measures,
        ideas=ideas,
        truth=truth,
        rng=rng,
    )
    _scores(
        session,
        collaborative_id=collaborative_id,
        members=members,
        truth=truth,
        last_month=last_month,
        rng=rng,
    )
    _sessions(
        session,
        collaborative_id=collaborative_id,
        history=history,
        members=members,
        truth=truth,
        rng=rng,
    )
