"""What a learning session holds (agenda, material, attendance) and the cycle's calendar.

Sessions themselves are recorded on the cycle (:mod:`qicollab.cycles`); the Breakthrough Series
alternates them with action periods, in which teams test changes at home. The calendar is the
sessions in date order with an action period between each pair and after the last one until the
cycle's last period ends.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.cycles.models import LearningSession
from qicollab.improvement.models import (
    AgendaItem,
    MaterialKind,
    SessionAttendance,
    SessionMaterial,
)
from qicollab.improvement.text import ImprovementError, required, screened
from qicollab.members.models import Member
from qicollab.reporting.models import Report, ReportKind
from qicollab.schedule.calendar import LearningCycle

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User

_TIME = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """A learning session (one day) or the action period that follows it."""

    kind: str  # "session" or "action period"
    starts_on: dt.date
    ends_on: dt.date
    title: str
    session_id: int | None = None

    @property
    def days(self) -> int:
        """Length in days, both ends included."""
        return (self.ends_on - self.starts_on).days + 1


def calendar(cycle: LearningCycle, sessions: list[LearningSession]) -> list[CalendarEntry]:
    """Sessions in date order with the action periods between and after them."""
    ordered = sorted(sessions, key=lambda s: (s.held_on, s.id))
    entries: list[CalendarEntry] = []
    for index, session in enumerate(ordered):
        entries.append(
            CalendarEntry("session", session.held_on, session.held_on, session.title, session.id)
        )
        following = ordered[index + 1].held_on if index + 1 < len(ordered) else None
        end = following - dt.timedelta(days=1) if following else cycle.last_period_end
        start = session.held_on + dt.timedelta(days=1)
        if end >= start:
            number = index + 1
            entries.append(CalendarEntry("action period", start, end, f"Action period {number}"))
    return entries


@dataclass
class SessionService:
    """Agenda, material and attendance of a collaborative's learning sessions."""

    db: Session
    collaborative_id: int

    def get(self, session_id: int) -> tuple[LearningSession, LearningCycle] | None:
        """The session and its cycle, if it belongs to this collaborative."""
        row = self.db.execute(
            sa.select(LearningSession, LearningCycle)
            .join(LearningCycle, LearningCycle.id == LearningSession.cycle_id)
            .where(
                LearningSession.id == session_id,
                LearningCycle.collaborative_id == self.collaborative_id,
            )
        ).first()
        return (row[0], row[1]) if row else None

    def sessions(self, cycle: LearningCycle) -> list[LearningSession]:
        """The cycle's sessions by date."""
        return list(
            self.db.scalars(
                sa.select(LearningSession)
                .where(LearningSession.cycle_id == cycle.id)
                .order_by(LearningSession.held_on, LearningSession.id)
            )
        )

    def agenda(self, session_id: int) -> list[AgendaItem]:
        """The session's agenda in order."""
        return list(
            self.db.scalars(
                sa.select(AgendaItem)
                .where(AgendaItem.session_id == session_id)
                .order_by(AgendaItem.position, AgendaItem.starts_at, AgendaItem.id)
            )
        )

    def materials(self, session_id: int) -> list[SessionMaterial]:
        """What is attached to the session."""
        return list(
            self.db.scalars(
                sa.select(SessionMaterial)
                .where(SessionMaterial.session_id == session_id)
                .order_by(SessionMaterial.id)
            )
        )

    def attendance(self, session_id: int) -> dict[int, int]:
        """People who attended, by member id (members not listed did not attend)."""
        return dict(
            self.db.execute(
                sa.select(SessionAttendance.member_id, SessionAttendance.people).where(
                    SessionAttendance.session_id == session_id, SessionAttendance.people > 0
                )
            ).all()
        )

    def _audit(
        self, action: str, session_id: int, actor: User | str | None, **details: object
    ) -> None:
        record(
            self.db,
            action,
            actor=actor,
            object_type="learning_session",
            object_id=session_id,
            collaborative_id=self.collaborative_id,
            details=dict(details),
        )

    def _session(self, session_id: int) -> LearningSession:
        found = self.get(session_id)
        if found is None:
            msg = "unknown learning session"
            raise ImprovementError(msg, field="session")
        return found[0]

    def add_agenda_item(
        self,
        session_id: int,
        *,
        title: str,
        starts_at: str = "",
        presenter: str = "",
        actor: User | str | None,
    ) -> AgendaItem:
        """Append an item to the agenda (audited)."""
        self._session(session_id)
        title = required(title, field="title", label="agenda item", max_chars=200)
        presenter = screened(presenter, field="presenter", label="presenter", max_chars=200)
        starts_at = (starts_at or "").strip()
        if starts_at and not _TIME.match(starts_at):
            msg = "the start time is written HH:MM (24-hour clock)"
            raise ImprovementError(msg, field="starts_at")
        position = len(self.agenda(session_id))
        item = AgendaItem(
            session_id=session_id,
            position=position,
            starts_at=starts_at,
            title=title,
            presenter=presenter,
        )
        self.db.add(item)
        self.db.flush()
        self._audit("learning_session.agenda_added", session_id, actor, title=title)
        return item

    def summary_pdfs(self, materials: list[SessionMaterial]) -> dict[int, int]:
        """Run id -> the id of its rendered blinded-summary PDF, for the runs attached."""
        run_ids = {
            m.run_id for m in materials if m.kind is MaterialKind.BLINDED_SUMMARY and m.run_id
        }
        if not run_ids:
            return {}
        return dict(
            self.db.execute(
                sa.select(Report.run_id, Report.id).where(
                    Report.run_id.in_(run_ids), Report.kind == ReportKind.BLINDED_SUMMARY
                )
            ).all()
        )

    def attach(
        self,
        session_id: int,
        kind: MaterialKind | str,
        *,
        run_id: int | None = None,
        title: str = "",
        url: str = "",
        actor: User | str | None,
    ) -> SessionMaterial:
        """Attach a run's blinded summary, the change package or a web link (audited)."""
        self._session(session_id)
        try:
            kind = MaterialKind(kind)
        except ValueError as error:
            msg = "unknown kind of material"
            raise ImprovementError(msg, field="kind") from error
        url = (url or "").strip()
        if kind is MaterialKind.BLINDED_SUMMARY:
            run = self.db.get(BenchmarkRun, run_id) if run_id is not None else None
            if (
                run is None
                or run.collaborative_id != self.collaborative_id
                or run.status is not RunStatus.SUCCEEDED
            ):
                msg = "choose a finished benchmark run of the collaborative"
                raise ImprovementError(msg, field="run")
            title = title.strip() or f"Blinded collaborative summary, run {run.id}"
        elif kind is MaterialKind.CHANGE_PACKAGE:
            run_id, title = None, title.strip() or "Change package (driver diagram)"
        else:
            run_id = None
            parts = urlsplit(url)
            if parts.scheme not in {"http", "https"} or not parts.netloc or len(url) > 500:
                msg = "a link needs an http(s) web address"
                raise ImprovementError(msg, field="url")
            title = required(title, field="title", label="title", max_chars=200)
        material = SessionMaterial(
            session_id=session_id, kind=kind, run_id=run_id, title=title[:200], url=url
        )
        self.db.add(material)
        self.db.flush()
        self._audit("learning_session.material_attached", session_id, actor, kind=kind.value)
        return material

    def record_attendance(
        self, session_id: int, people: dict[int, int], *, actor: User | str | None
    ) -> None:
        """Set how many people of each member attended (0 or absent: did not attend)."""
        self._session(session_id)
        members = set(
            self.db.scalars(
                sa.select(Member.id).where(Member.collaborative_id == self.collaborative_id)
            )
        )
        for member_id, count in people.items():
            if member_id not in members:
                msg = "unknown member"
                raise ImprovementError(msg, field="attendance")
            if not isinstance(count, int) or count < 0 or count > 1000:
                msg = "attendance is a whole number of people from 0 to 1,000"
                raise ImprovementError(msg, field="attendance")
        self.db.execute(
            sa.delete(SessionAttendance).where(SessionAttendance.session_id == session_id)
        )
        rows = [
            {"session_id": session_id, "member_id": m, "people": n}
            for m, n in sorted(people.items())
            if n > 0
        ]
        if rows:
            self.db.execute(sa.insert(SessionAttendance), rows)
        self._audit(
            "learning_session.attendance_recorded",
            session_id,
            actor,
            members=len(rows),
            people=sum(r["people"] for r in rows),
        )
