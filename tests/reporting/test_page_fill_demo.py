"""The page-fill check of test_page_fill.py on the demo-sized collaborative (40 hospitals, eight
measures, 36 months: what ``qicollab demo`` loads and computes): the twelve-member test world has
shorter tables and fewer flags, so its pages break elsewhere.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from qicollab.benchmarking.services import BenchmarkRunService
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.demo.generator import generate
from qicollab.demo.loader import DEMO_SLUG, HISTORY_CYCLE, load
from qicollab.members.models import Collaborative, Member
from qicollab.migrations import upgrade
from qicollab.reporting.models import ReportKind
from qicollab.reporting.reports import ReportSpec
from qicollab.reporting.results import load_run
from tests.reporting.conftest import render
from tests.reporting.test_page_fill import LEAST, fills, section_starts

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A member's report, the collaborative report and the blinded summary of the demo's run."""
    folder = tmp_path_factory.mktemp("demo")
    engine = create_engine_from_settings({"sqlalchemy.url": f"sqlite:///{folder / 'demo.sqlite'}"})
    try:
        upgrade(engine)
        factory = get_session_factory(engine)
        with factory() as session:
            load(session, generate(), storage=folder / "storage")
            session.commit()
            collaborative_id = session.scalar(
                sa.select(Collaborative.id).where(Collaborative.slug == DEMO_SLUG)
            )
        service = BenchmarkRunService(factory)
        run = service.create(collaborative_id=collaborative_id, cycle_code=HISTORY_CYCLE)
        service.execute(run.id)
        with factory() as session:
            loaded = load_run(session, run.id)
            member = session.scalar(
                sa.select(Member.id)
                .where(Member.collaborative_id == collaborative_id)
                .order_by(Member.code)
                .limit(1)
            )
            return {
                "member": render(session, loaded, ReportSpec(ReportKind.MEMBER, member)),
                "collaborative": render(session, loaded, ReportSpec(ReportKind.COLLABORATIVE)),
                "blinded-summary": render(session, loaded, ReportSpec(ReportKind.BLINDED_SUMMARY)),
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["member", "collaborative", "blinded-summary"])
def test_no_demo_report_page_is_less_than_a_third_full(demo_reports, kind):
    document = demo_reports[kind]
    shares = fills(document.pdf)
    starts = section_starts(document.reader)
    assert len(shares) == len(document.reader.pages) > 3
    short = [
        f"page {index + 1}: {share:.0%} full"
        for index, share in enumerate(shares)
        if index > 0 and share < LEAST and index not in starts
    ]
    assert not short, "\n".join(short)
