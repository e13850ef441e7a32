"""Every variation and assurance icon name the SPC engine can emit has its own badge."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.reporting.charts.icons import (
    ASSURANCE,
    NO_ASSURANCE,
    NO_VARIATION,
    VARIATION,
    assurance_icon,
    variation_icon,
)
from qicollab.stats import spc
from qicollab.stats.spc_results import POINT_TYPES

DIRECTIONS = ("increase", "decrease", "neutral")


def _series(last: float) -> np.ndarray:
    """Twenty steady points around 10, then ``last``."""
    rng = np.random.default_rng(5)
    return np.append(10 + rng.normal(0, 0.5, 20), last)


def _emitted_icons() -> tuple[set[str], set[str]]:
    """The icon names the engine gives for a last point above, below and inside the limits,
    in each direction, with a target above, below and inside the limits."""
    variation: set[str] = set()
    assurance: set[str] = set()
    for last in (30.0, -10.0, 10.0):
        for direction in DIRECTIONS:
            for target in (30.0, -10.0, 10.0):
                chart = spc.control_charts(
                    _series(last)[None, :], chart="i", direction=direction, target=target
                ).chart_at(0)
                variation.add(chart.variation_icon)
                if chart.assurance_icon is not None:
                    assurance.add(chart.assurance_icon)
    return variation, assurance


def test_the_engine_emits_its_whole_vocabulary_and_every_name_has_a_badge():
    variation, assurance = _emitted_icons()
    assert variation == set(spc._VARIATION.ravel())  # every name in the engine's table
    assert assurance == {"consistent_pass", "consistent_fail", "inconsistent"}
    for name in variation:
        for direction in ("increase", "decrease"):
            icon = variation_icon(name, direction)
            assert icon is VARIATION[name]
            assert icon is not NO_VARIATION
            assert icon.words in icon.svg()
    for name in assurance:
        assert assurance_icon(name) is ASSURANCE[name] is not NO_ASSURANCE


@pytest.mark.parametrize(
    ("name", "direction", "key"),
    [
        ("neutral_high", "increase", "neutral_high"),
        ("special_cause_neutral_low", "decrease", "neutral_low"),
        ("special_cause_improvement", "increase", "improvement_high"),
        ("special_cause_improvement", "decrease", "improvement_low"),
        ("special_cause_concern", "increase", "concern_low"),
        ("special_cause_concern", "decrease", "concern_high"),
    ],
)
def test_point_types_stored_by_early_runs_get_the_sided_badge(name, direction, key):
    assert variation_icon(name, direction) is VARIATION[key]


def test_every_point_type_has_a_badge():
    assert all(variation_icon(t, "increase") is not NO_VARIATION for t in POINT_TYPES)


def test_no_icon_means_not_assessed():
    assert variation_icon(None, "increase") is NO_VARIATION
    assert assurance_icon(None) is NO_ASSURANCE
