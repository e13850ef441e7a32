"""Layouts and validation contexts built without a database, for the pure unit tests."""

from __future__ import annotations

import datetime as dt

from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.members.models import Collaborative, DeidProfile, Member
from qicollab.submissions.errors import WindowReason
from qicollab.submissions.layout import Layout, layout_for
from qicollab.submissions.validation import History, PeriodInfo, ValidationContext
from qicollab.submissions.windows import WindowStatus
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


def context(
    *,
    open_labels: tuple[str, ...] = (),
    closed: dict[str, WindowReason] | None = None,
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
            window=WindowStatus(WindowReason.OPEN),
        )
    for offset, (label, reason) in enumerate((closed or {}).items()):
        year = int(label[:4])
        periods[label] = PeriodInfo(
            id=100 + offset,
            label=label,
            start=dt.date(year, 1, 1),
            end=dt.date(year, 12, 31),
            window=WindowStatus(reason, cycle_code="C"),
        )
    return ValidationContext(periods=periods, now=NOW, history=history, max_problems=max_problems)
