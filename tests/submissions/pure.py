"""Layouts and validation contexts built without a database, for the pure unit tests."""

from __future__ import annotations

import datetime as dt

from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.members.models import Collaborative, DeidProfile, Member
from qicollab.schedule.calendar import CycleStatus
from qicollab.schedule.windows import CycleWindow, WindowState, decide_window
from qicollab.submissions.layout import Layout, layout_for
from qicollab.submissions.validation import History, PeriodInfo, ValidationContext
from tests.submissions.conftest import NOW, risk_model


def layout(
    kind: MeasureType = MeasureType.PROPORTION,
    *,
    patient: bool = False,
    profile: DeidProfile = DeidProfile.LIMITED_DATA_SET,
    dua: bool = True,
) -> Layout:
    measure = Measure(
        code="SURG" if patient else "HH",
        title="t",
        measure_type=kind,
        level=DataLevel.PATIENT if patient else DataLevel.AGGREGATE,
        direction=Direction.INCREASE,
        numerator_definition="n",
        denominator_definition="d",
        exclusion_definition="",
        unit="",
        risk_model=risk_model().to_json() if patient else None,
    )
    collaborative = Collaborative(slug="c", name="c", deid_profile=profile)
    member = Member(code="H", name="H", has_data_use_agreement=dua)
    return layout_for(measure, collaborative=collaborative, member=member)


#: A cycle whose facts put a period in each window state at NOW (decided by the real rule).
_CYCLE_FOR = {
    WindowState.OPEN: (CycleStatus.OPEN, -1, 1),
    WindowState.LOCKED: (CycleStatus.LOCKED, -30, -1),
    WindowState.CLOSED_AFTER_DEADLINE: (CycleStatus.OPEN, -30, -1),
    WindowState.NOT_YET_OPEN: (CycleStatus.OPEN, 1, 30),
}


def _window(period_id: int, label: str, state: WindowState):
    status, opens, closes = _CYCLE_FOR[state]
    cycle = CycleWindow(
        id=1,
        code="C",
        status=status,
        first_period_start=dt.date(2000, 1, 1),
        last_period_end=dt.date(2100, 12, 31),
        window_opens_at=NOW + dt.timedelta(days=opens),
        deadline=NOW + dt.timedelta(days=closes),
        measure_ids=frozenset(),
    )
    year = int(label[:4])
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    window = decide_window(period_id, label, start, end, 1, 1, [cycle], [], NOW)
    assert window.state is state
    return window


def context(
    *,
    open_labels: tuple[str, ...] = (),
    closed: dict[str, WindowState] | None = None,
    history: History | None = None,
    max_problems: int | None = 1000,
) -> ValidationContext:
    periods = {}
    labels = open_labels or (
        *(f"2026-{m:02d}" for m in range(1, 13)),
        "2026",
    )
    for index, label in enumerate(labels):
        year = int(label[:4])
        periods[label] = PeriodInfo(
            id=index + 1,
            label=label,
            start=dt.date(year, 1, 1),
            end=dt.date(year, 12, 31),
            window=_window(index + 1, label, WindowState.OPEN),
        )
    for offset, (label, reason) in enumerate((closed or {}).items()):
        year = int(label[:4])
        periods[label] = PeriodInfo(
            id=100 + offset,
            label=label,
            start=dt.date(year, 1, 1),
            end=dt.date(year, 12, 31),
            window=_window(100 + offset, label, reason),
        )
    return ValidationContext(periods=periods, now=NOW, history=history, max_problems=max_problems)
