"""The catalogue pages show every target as the results and reports do: on the display scale
with its unit, from the data-scale value the catalogue stores."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.accounts.models import Role, User
from qicollab.demo.generator import generate
from qicollab.demo.loader import load
from qicollab.measures.models import Measure
from tests.helpers import sign_in


@pytest.fixture
def browser(db_session, webapp, tmp_path):
    """A member's quality officer, signed in, on the 12-member demo."""
    load(db_session, generate(n_members=12), storage=tmp_path)
    db_session.commit()
    officer = db_session.scalar(sa.select(User).where(User.role == Role.QUALITY_OFFICER).limit(1))
    sign_in(webapp, db_session, officer)
    return webapp


def test_the_demo_stores_rate_targets_on_the_data_scale(browser, db_session):
    targets = dict(db_session.execute(sa.select(Measure.code, Measure.target)).all())
    db_session.commit()
    assert targets["CLABSI"] == pytest.approx(0.0008)
    assert targets["FALLS"] == pytest.approx(0.0025)
    assert targets["HH"] == pytest.approx(0.9)


def test_the_list_and_the_detail_page_show_targets_on_the_display_scale(browser):
    listing = browser.get("/catalogue/measures")
    assert "0.8 per 1,000 line-days" in listing.text
    assert "2.5 per 1,000 patient-days" in listing.text
    assert "90 %" in listing.text
    assert "20 minutes" in listing.text
    assert "0.0008" not in listing.text
    detail = browser.get("/catalogue/measures/CLABSI")
    assert "0.8 per 1,000 line-days" in detail.text
    assert "0.0008" not in detail.text
