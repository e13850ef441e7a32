"""Small-cell suppression: worked examples and a hypothesis property test on random tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qicollab.stats.suppression import (
    ColumnTotal,
    Complement,
    RowTotal,
    recoverable_by_subtraction,
    suppress_small_cells,
)


def _table() -> pd.DataFrame:
    frame = pd.DataFrame(
        {"a": [5, 40, 30], "b": [20, 3, 50]}, index=["u1", "u2", "u3"], dtype=float
    )
    frame["c"] = frame["a"] + frame["b"]
    frame.loc["total"] = frame.sum()
    frame["rate"] = frame["a"] / frame["c"]
    return frame


class TestExamples:
    def test_primary_complementary_and_derived(self) -> None:
        frame = _table()
        result = suppress_small_cells(
            frame,
            counts=["a", "b", "c"],
            derived={"rate": ["a", "c"]},
            column_totals=[ColumnTotal("c", ("a", "b"))],
            row_totals=[RowTotal("total")],
        )
        reasons = result.reasons
        assert reasons.at["u1", "a"] == "primary"
        assert reasons.at["u2", "b"] == "primary"
        # u1's 5 = c - b: b is suppressed with it; then column totals force u2's a
        assert reasons.at["u1", "b"] == "complementary"
        assert reasons.at["u2", "a"] == "complementary"
        assert reasons.at["u1", "rate"] == "derived"
        assert result.table.at["u3", "a"] == 30
        assert result.table.at["u1", "a"] is None
        assert ("u1", "a") in result.suppressed_cells
        assert not recoverable_by_subtraction(
            result,
            frame,
            counts=["a", "b", "c"],
            column_totals=[ColumnTotal("c", ("a", "b"))],
            row_totals=[RowTotal("total")],
        )

    def test_small_complement_hides_the_numerator(self) -> None:
        frame = pd.DataFrame({"x": [98.0, 50.0, 5.0], "n": [100.0, 500.0, 200.0]})
        frame["pct"] = 100 * frame["x"] / frame["n"]
        result = suppress_small_cells(
            frame,
            counts=["x", "n"],
            derived={"pct": ["x", "n"]},
            complements=[Complement("x", "n")],
        )
        assert result.reasons.at[0, "x"] == "complement"  # 100 - 98 = 2 survivors
        assert result.reasons.at[0, "pct"] == "derived"
        assert result.reasons.at[2, "x"] == "primary"
        assert not result.mask.loc[1].any()
        assert (0, "x", "n") in result.protected_complements

    def test_zero_and_threshold_settings(self) -> None:
        frame = pd.DataFrame({"x": [0.0, 7.0, 12.0]})
        default = suppress_small_cells(frame, counts=["x"])
        assert list(default.mask["x"]) == [False, True, False]
        strict = suppress_small_cells(frame, counts=["x"], threshold=12, suppress_zero=True)
        assert list(strict.mask["x"]) == [True, True, True]
        loose = suppress_small_cells(frame, counts=["x"], threshold=5)
        assert not loose.mask["x"].any()

    def test_missing_counts_are_not_shown_but_not_sensitive(self) -> None:
        frame = pd.DataFrame({"a": [np.nan, 40.0], "b": [20.0, 30.0], "c": [25.0, 70.0]})
        result = suppress_small_cells(
            frame, counts=["a", "b", "c"], column_totals=[ColumnTotal("c", ("a", "b"))]
        )
        assert not result.mask.any().any()

    def test_linear_audit_catches_chained_derivation(self) -> None:
        # Without the audit: rows a and b each hide two cells, but the column totals pin them
        frame = pd.DataFrame(
            {"p": [3.0, 50.0, 60.0], "q": [40.0, 4.0, 70.0]}, index=["a", "b", "c"]
        )
        frame["t"] = frame["p"] + frame["q"]
        frame.loc["all"] = frame.sum()
        result = suppress_small_cells(
            frame,
            counts=["p", "q", "t"],
            column_totals=[ColumnTotal("t", ("p", "q"))],
            row_totals=[RowTotal("all")],
        )
        assert _determined(result, frame, ["p", "q", "t"], "t", ("p", "q"), "all") == []

    def test_bad_declarations(self) -> None:
        frame = pd.DataFrame({"x": [1.0], "r": [0.1]})
        with pytest.raises(KeyError, match="y"):
            suppress_small_cells(frame, counts=["y"])
        with pytest.raises(ValueError, match="non-count"):
            suppress_small_cells(frame, counts=["x"], derived={"r": ["r"]})
        with pytest.raises(ValueError, match="negative"):
            suppress_small_cells(frame.assign(x=-1.0), counts=["x"])


def _determined(
    result, frame: pd.DataFrame, counts: list[str], total_col: str, parts: tuple, total_row
) -> list[tuple]:
    """Suppressed cells whose value is fixed by the visible cells through all relations.

    Written independently of the module: a cell k is determined iff adding e_k to the
    constraint matrix restricted to the hidden cells does not raise its rank.
    """
    hidden = [(r, c) for r in frame.index for c in counts if result.mask.at[r, c]]
    if not hidden:
        return []
    position = {cell: i for i, cell in enumerate(hidden)}
    equations = []
    for row in frame.index:
        cells = [(row, total_col)] + [(row, p) for p in parts]
        equations.append([(1.0 if i == 0 else -1.0, cell) for i, cell in enumerate(cells)])
    body = [r for r in frame.index if r != total_row]
    for column in counts:
        cells = [(total_row, column)] + [(r, column) for r in body]
        equations.append([(1.0 if i == 0 else -1.0, cell) for i, cell in enumerate(cells)])
    matrix = []
    for equation in equations:
        row = np.zeros(len(hidden))
        for coefficient, cell in equation:
            if cell in position:
                row[position[cell]] += coefficient
        if row.any():
            matrix.append(row)
    a = np.array(matrix) if matrix else np.zeros((0, len(hidden)))
    base = np.linalg.matrix_rank(a) if a.size else 0
    found = []
    for cell, i in position.items():
        unit = np.zeros(len(hidden))
        unit[i] = 1.0
        if np.linalg.matrix_rank(np.vstack([a, unit])) == base:
            found.append(cell)
    return found


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, int]:
    rows = draw(st.integers(min_value=1, max_value=6))
    parts = draw(st.integers(min_value=1, max_value=4))
    threshold = draw(st.sampled_from([5, 10]))
    cell = st.one_of(
        st.integers(min_value=0, max_value=threshold),
        st.integers(min_value=threshold + 1, max_value=400),
    )
    values = draw(st.lists(cell, min_size=rows * parts, max_size=rows * parts))
    matrix = np.array(values, dtype=float).reshape(rows, parts)
    columns = [f"p{j}" for j in range(parts)]
    frame = pd.DataFrame(matrix, columns=columns, index=[f"u{i}" for i in range(rows)])
    frame["total"] = frame[columns].sum(axis=1)
    frame.loc["all"] = frame.sum()
    return frame, threshold


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_no_small_count_is_visible_or_recoverable(case: tuple[pd.DataFrame, int]) -> None:
    frame, threshold = case
    parts = tuple(c for c in frame.columns if c.startswith("p"))
    counts = [*parts, "total"]
    frame["share"] = frame[parts[0]] / frame["total"].replace(0, np.nan)
    result = suppress_small_cells(
        frame,
        counts=counts,
        derived={"share": [parts[0], "total"]},
        column_totals=[ColumnTotal("total", parts)],
        row_totals=[RowTotal("all")],
        threshold=threshold,
    )
    visible = frame[counts].where(~result.mask[counts])
    # 1. no visible count is in 1..threshold
    assert not ((visible >= 1) & (visible <= threshold)).any().any()
    # 2. no suppressed count is a visible total minus visible cells, along rows or columns
    for row in frame.index:
        hidden = [c for c in counts if result.mask.at[row, c]]
        assert len(hidden) != 1, (row, hidden)
    for column in counts:
        hidden = [r for r in frame.index if result.mask.at[r, column]]
        assert len(hidden) != 1, (column, hidden)
    # 3. nor by any combination of the relations
    assert _determined(result, frame, counts, "total", parts, "all") == []
    # 4. a derived value is shown only if everything it is computed from is shown
    for row in frame.index:
        if result.mask.at[row, parts[0]] or result.mask.at[row, "total"]:
            assert result.mask.at[row, "share"]
            assert result.table.at[row, "share"] is None
    # 5. nothing that was not sensitive is hidden without a reason
    assert set(result.reasons.stack().dropna().unique()) <= {
        "primary",
        "complementary",
        "derived",
    }
