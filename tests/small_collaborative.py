"""The two-hospital collaborative the submission and workflow tests build on: H01 (with a data use
agreement) and H02 (without), one measure of each kind, and yearly and monthly periods."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from qicollab.cycles.models import Granularity, ReportingPeriod
from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.measures.spec import RiskModelSpec
from qicollab.members.models import (
    BedSizeBand,
    Collaborative,
    DeidProfile,
    Member,
    OrgType,
    Rurality,
)


@dataclass
class TwoHospitals:
    collaborative: Collaborative
    h01: Member  # has a data use agreement
    h02: Member  # has none
    #: HH (proportion), CLABSI (rate), D2P (mean), SURG (patient level, ratio).
    measures: dict[str, Measure]


def two_hospitals(
    session: Session,
    *,
    slug: str,
    name: str,
    profile: DeidProfile,
    risk_model: RiskModelSpec,
) -> TwoHospitals:
    """The collaborative, its two members and four measures, flushed (ids assigned)."""
    collaborative = Collaborative(slug=slug, name=name, deid_profile=profile)
    session.add(collaborative)
    session.flush()

    def member(code: str, *, dua: bool) -> Member:
        return Member(
            collaborative_id=collaborative.id,
            code=code,
            name=f"Hospital {code}",
            blinded_code=f"P-{code}",
            org_type=OrgType.ACUTE_HOSPITAL,
            bed_size_band=BedSizeBand.FROM_100_TO_299,
            rurality=Rurality.URBAN,
            region="North",
            has_data_use_agreement=dua,
        )

    def measure(code: str, kind: MeasureType, level: DataLevel = DataLevel.AGGREGATE) -> Measure:
        return Measure(
            collaborative_id=collaborative.id,
            code=code,
            title=f"Measure {code}",
            measure_type=kind,
            level=level,
            direction=Direction.INCREASE,
            numerator_definition="numerator",
            denominator_definition="denominator",
            risk_model=risk_model.to_json() if level is DataLevel.PATIENT else None,
        )

    h01, h02 = member("H01", dua=True), member("H02", dua=False)
    measures = {
        "HH": measure("HH", MeasureType.PROPORTION),
        "CLABSI": measure("CLABSI", MeasureType.RATE),
        "D2P": measure("D2P", MeasureType.MEAN),
        "SURG": measure("SURG", MeasureType.RATIO, DataLevel.PATIENT),
    }
    session.add_all([h01, h02, *measures.values()])
    session.flush()
    return TwoHospitals(collaborative, h01, h02, measures)


def year_and_month_periods(
    session: Session, collaborative_id: int, years: Iterable[int]
) -> dict[str, ReportingPeriod]:
    """A period per year and per month of ``years``, by label ("2026", "2026-01"), flushed."""
    periods: dict[str, ReportingPeriod] = {}
    for year in years:
        periods[str(year)] = ReportingPeriod(
            collaborative_id=collaborative_id,
            label=str(year),
            granularity=Granularity.YEAR,
            start_date=dt.date(year, 1, 1),
            end_date=dt.date(year, 12, 31),
        )
        for month in range(1, 13):
            periods[f"{year}-{month:02d}"] = ReportingPeriod(
                collaborative_id=collaborative_id,
                label=f"{year}-{month:02d}",
                granularity=Granularity.MONTH,
                start_date=dt.date(year, month, 1),
                end_date=dt.date(year, month, calendar.monthrange(year, month)[1]),
            )
    session.add_all(periods.values())
    session.flush()
    return periods
