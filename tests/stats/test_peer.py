"""Peer summaries and direction-aware decile ranks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qicollab.stats.peer import decile_ranks, peer_benchmark, summarise


class TestSummaries:
    def test_matches_r_type_7_quantiles(self) -> None:
        values = [0.02, 0.05, 0.04, 0.10, 0.07, 0.03, 0.06]
        summary = summarise(values)
        # R: quantile(c(...), c(.25, .5, .75)) -> 0.035, 0.05, 0.065
        assert (summary.q1, summary.median, summary.q3) == pytest.approx((0.035, 0.05, 0.065))
        assert summary.mean == pytest.approx(np.mean(values))
        assert summary.deciles[0] == pytest.approx(0.026)  # R quantile(x, 0.1)
        assert (summary.minimum, summary.maximum) == (0.02, 0.10)
        assert summary.n_units == 7

    def test_ignores_missing_and_handles_empty(self) -> None:
        assert summarise([1.0, np.nan, 3.0]).mean == 2.0
        empty = summarise([np.nan])
        assert empty.n_units == 0
        assert math.isnan(empty.median)


class TestDeciles:
    def test_lower_is_better_puts_the_lowest_in_decile_one(self) -> None:
        values = np.arange(1.0, 21.0)
        rank, decile, percentile = decile_ranks(values, improvement="decrease")
        assert list(rank[:3]) == [1, 2, 3]
        assert list(decile) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]
        assert percentile[0] == 100.0
        assert percentile[-1] == 0.0

    def test_higher_is_better_reverses(self) -> None:
        _, decile, _ = decile_ranks(np.arange(1.0, 21.0), improvement="increase")
        assert decile[-1] == 1
        assert decile[0] == 10

    def test_ties_share_the_best_rank(self) -> None:
        rank, decile, _ = decile_ranks([5.0, 5.0, 1.0, 9.0], improvement="decrease")
        assert list(rank) == [2, 2, 1, 4]
        assert list(decile) == [5, 5, 3, 10]

    def test_unknown_direction(self) -> None:
        with pytest.raises(ValueError, match="improvement"):
            decile_ranks([1.0], improvement="up")  # type: ignore[arg-type]


class TestPeerBenchmark:
    def test_collaborative_groups_and_units(self) -> None:
        values = pd.Series({"a": 0.05, "b": 0.08, "c": 0.02, "d": np.nan, "e": 0.11})
        groups = {"a": ["teaching"], "b": ["teaching", "urban"], "e": ["urban"], "c": []}
        result = peer_benchmark(values, improvement="decrease", groups=groups)
        assert result.decile_one == "best"
        assert result.collaborative.n_units == 4
        assert result.group("teaching").median == pytest.approx(0.065)
        assert result.group("urban").maximum == 0.11
        by_unit = {u.unit: u for u in result.units}
        assert by_unit["c"].decile == 3  # best of 4: ceil(10 * 1 / 4)
        assert by_unit["e"].decile == 10
        assert by_unit["d"].decile is None
        assert by_unit["d"].rank is None
        assert dict(by_unit["b"].group_deciles) == {"teaching": 10, "urban": 5}
        assert by_unit["c"].group_deciles == ()
        frame = result.to_frame()
        assert list(frame.columns) == ["unit", "value", "rank", "decile", "percentile"]
        with pytest.raises(KeyError):
            result.group("rural")

    def test_mapping_input(self) -> None:
        result = peer_benchmark({"x": 1.0, "y": 2.0}, improvement="increase")
        assert [u.rank for u in result.units] == [2, 1]
