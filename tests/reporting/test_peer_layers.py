"""Peer layers built once per process: every member's chart of a run is the chart built anew.

The funnel and caterpillar plots keep the marks of all members (qicollab.reporting.charts,
``_peer_layer``) keyed by the values, scale and the member left out; each test builds charts
for different members from the cache and again from an empty cache and compares the SVG.
"""

from __future__ import annotations

import random
import re

import pytest

from qicollab.reporting.charts import caterpillar, peer_funnel
from qicollab.reporting.charts.caterpillar import CaterpillarPoint, caterpillar_chart
from qicollab.reporting.charts.common import DENSE
from qicollab.reporting.charts.peer_funnel import FunnelCurve, FunnelPoint, funnel_chart

_IDS = re.compile(r"\b(qc|clip)\d+")


def _values(count: int) -> list[tuple[float, float, float]]:
    rng = random.Random(count)
    return [(rng.uniform(0.4, 2.2), rng.uniform(1, 900), rng.uniform(0, 25)) for _ in range(count)]


def _caterpillar(values, own: int | None):
    points = [
        CaterpillarPoint("You" if i == own else f"P{i:04d}", e, e * 0.8, e * 1.3, own=i == own)
        for i, (e, _, _) in enumerate(values)
    ]
    return caterpillar_chart(points, title="MORT: observed / expected by member")


def _funnel(values, own: int | None):
    points = [
        FunnelPoint("You" if i == own else f"P{i:04d}", x, y, own=i == own)
        for i, (_, x, y) in enumerate(values)
    ]
    limits = tuple((x, 10 - 30 / x**0.5, 10 + 30 / x**0.5) for x in range(1, 900, 40))
    curve = FunnelCurve("95", limits, "5 3")
    return funnel_chart(
        points, [curve], title="MORT: funnel plot", target=10.0, x_label="Expected", y_label="Rate"
    )


def _same(first, second) -> bool:
    return (
        _IDS.sub("#", first.svg) == _IDS.sub("#", second.svg)
        and first.description == second.description
        and first.rows == second.rows
    )


@pytest.mark.parametrize(("build", "module"), [(_caterpillar, caterpillar), (_funnel, peer_funnel)])
def test_a_dense_peer_layer_is_built_once_for_every_member(build, module):
    values = _values(1000)
    module._peer_layer.cache_clear()
    charts = {own: build(values, own) for own in (None, 0, 137, 999)}
    info = module._peer_layer.cache_info()
    assert (info.misses, info.hits) == (1, 3)
    for own, chart in charts.items():
        module._peer_layer.cache_clear()
        assert _same(chart, build(values, own)), own
    assert "You" in charts[137].svg
    assert "You" not in charts[None].svg


@pytest.mark.parametrize(("build", "module"), [(_caterpillar, caterpillar), (_funnel, peer_funnel)])
def test_a_sparse_chart_leaves_the_members_own_mark_out_of_the_layer(build, module):
    """Below DENSE members the member's own point is drawn only by itself, so each member
    has its own layer."""
    values = _values(DENSE // 2)
    module._peer_layer.cache_clear()
    first, again, other = build(values, 3), build(values, 3), build(values, 40)
    info = module._peer_layer.cache_info()
    assert (info.misses, info.hits) == (2, 1)
    assert _same(first, again)
    assert not _same(first, other)
    module._peer_layer.cache_clear()
    assert _same(other, build(values, 40))


def test_a_changed_value_is_a_new_layer():
    values = _values(1000)
    caterpillar._peer_layer.cache_clear()
    before = _caterpillar(values, 5)
    values[500] = (values[500][0] * 1.5, *values[500][1:])
    after = _caterpillar(values, 5)
    assert caterpillar._peer_layer.cache_info().misses == 2
    assert not _same(before, after)


def test_a_charts_text_alternative_can_list_only_its_first_rows():
    """Pages list the first rows of a 1,000-member chart (sections.ALT_ROWS): built only
    for those, they are the full chart's first rows, and nothing else changes."""
    values = _values(1000)
    cat_points = [
        CaterpillarPoint("You" if i == 5 else f"P{i:04d}", e, e * 0.8, e * 1.3, own=i == 5)
        for i, (e, _, _) in enumerate(values)
    ]
    fun_points = [FunnelPoint(f"P{i:04d}", x, y, own=i == 5) for i, (_, x, y) in enumerate(values)]
    curve = FunnelCurve("95", tuple((x, 5.0, 15.0) for x in range(1, 900, 40)), "5 3")

    def build(max_rows):
        return (
            caterpillar_chart(cat_points, title="O/E", max_rows=max_rows),
            funnel_chart(
                fun_points,
                [curve],
                title="F",
                target=10.0,
                x_label="n",
                y_label="r",
                max_rows=max_rows,
            ),
        )

    for full, short in zip(build(None), build(60), strict=True):
        assert len(full.rows) == 1000
        assert short.rows == full.rows[:60]
        assert _IDS.sub("#", short.svg) == _IDS.sub("#", full.svg)
        assert short.description == full.description
