"""Small-cell suppression for tables about peers, with complementary suppression.

A count from 1 to ``threshold`` (10 by default; 0 too if ``suppress_zero``) about a peer must not
be shown, and neither may anything from which it could be worked out:

1. **Primary**: every sensitive count cell is suppressed.
2. **Derived**: a rate, percentage or O/E computed from a suppressed count is suppressed (rate x
   denominator would give the count back; a visible rate with a visible numerator gives the
   denominator).
3. **Complementary along totals**: where a total is shown, a single suppressed cell in its row
   (or column) is the total minus the visible cells. So if a total relation has exactly one
   unknown cell that needs protection, the smallest other visible cell of that relation is
   suppressed too (a non-zero part first, then a zero part, then the total), and this repeats,
   along both dimensions, until nothing changes.
4. **Complements**: for a numerator/denominator pair, denominator - numerator is itself a count
   (e.g. survivors); when it is sensitive, the numerator is suppressed (and with it the rate).
5. **Audit**: finally the whole table is checked as a linear system (all relations at once):
   a suppressed cell that is uniquely determined by the visible cells through any combination
   of relations gets another complementary suppression, until no protected cell is determined.

The API works on a DataFrame: declare the count columns, the derived columns (and which counts
each depends on, within the row), column totals (a total column = sum of part columns in every
row), row totals (a total row = sum of part rows in some columns, identified by index labels)
and numerator/denominator complements. Bounds from non-negativity are not considered (a
suppressed zero next to a suppressed 3 reveals that their sum is 3, not either value).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

Cell = tuple[Hashable, str]


@dataclass(frozen=True, slots=True)
class ColumnTotal:
    """In every row, column ``total`` = sum of columns ``parts``."""

    total: str
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RowTotal:
    """Row ``total`` (an index label) = sum of rows ``parts`` (default: every other row that is
    not itself a total), in ``columns`` (default: every count column)."""

    total: Hashable
    parts: tuple[Hashable, ...] | None = None
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Complement:
    """``denominator - numerator`` is an unpublished count that must be protected too."""

    numerator: str
    denominator: str


@dataclass(frozen=True, slots=True)
class SuppressionResult:
    """A table with its small cells, and every cell they could be derived from, hidden.

    Why: a peer's small counts can identify patients; hiding only the small cells is not enough
    when totals, rates or complements let a reader recompute them.

    Parameters
    ----------
    method : str
        ``"primary + derived + complementary suppression with a linear-system audit"``.
    threshold : int
        Counts from 1 to ``threshold`` are sensitive.
    suppress_zero : bool
        Whether 0 is sensitive too.
    table : pandas.DataFrame
        The input with suppressed cells set to None (object dtype in the affected columns).
    mask : pandas.DataFrame
        True where a count or derived cell is suppressed (count and derived columns only).
    reasons : pandas.DataFrame
        ``"primary"``, ``"complementary"``, ``"complement"`` (protects a hidden
        denominator - numerator), ``"derived"`` or None.
    protected_complements : tuple of (row, numerator, denominator)
        Hidden complement cells that were sensitive (and are now not derivable).
    iterations : int
        Passes until stable.

    References
    ----------
    Cox LH (1980), Suppression methodology and statistical disclosure control, JASA 75:377-385;
    Hundepool A et al. (2012), Statistical Disclosure Control, Wiley, ch. 4 and 5; NHS Digital
    / ONS small-number guidance (suppress 1-7 or 1-10 and secondary cells).
    """

    method: str
    threshold: int
    suppress_zero: bool
    table: pd.DataFrame
    mask: pd.DataFrame
    reasons: pd.DataFrame
    protected_complements: tuple[tuple[Hashable, str, str], ...]
    iterations: int

    @property
    def suppressed_cells(self) -> tuple[Cell, ...]:
        """(row label, column) of every suppressed cell."""
        stacked = self.mask.stack()
        return tuple((row, col) for (row, col), hidden in stacked.items() if hidden)


@dataclass(slots=True)
class _Relation:
    """total = sum(parts); cells are keys into the value map."""

    total: tuple
    parts: list[tuple] = field(default_factory=list)

    @property
    def cells(self) -> list[tuple]:
        return [self.total, *self.parts]


def _is_sensitive(value: float, threshold: int, suppress_zero: bool) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return (1 <= value <= threshold) or (suppress_zero and value == 0)


def suppress_small_cells(
    frame: pd.DataFrame,
    *,
    counts: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
    column_totals: Sequence[ColumnTotal] = (),
    row_totals: Sequence[RowTotal] = (),
    complements: Sequence[Complement] = (),
    threshold: int = 10,
    suppress_zero: bool = False,
    max_iterations: int = 10_000,
) -> SuppressionResult:
    """Suppress small counts and everything they can be derived from (see the module doc).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, one row per unit (plus any total rows); the index labels identify rows and
        must be unique.
    counts : sequence of str
        Count columns (non-negative numbers; NaN = not shown).
    derived : mapping, optional
        Derived column -> the count columns of the same row it is computed from.
    column_totals, row_totals, complements : sequences
        The table's additive relations.
    threshold : int
        Largest sensitive count (10).
    suppress_zero : bool
        Treat 0 as sensitive too.
    """
    if not frame.index.is_unique:
        msg = "row labels must be unique"
        raise ValueError(msg)
    derived = dict(derived or {})
    for column in [*counts, *derived]:
        if column not in frame.columns:
            msg = f"unknown column {column!r}"
            raise KeyError(msg)
    for name, deps in derived.items():
        unknown = [d for d in deps if d not in counts]
        if unknown:
            msg = f"derived column {name!r} depends on non-count columns {unknown}"
            raise ValueError(msg)
    values: dict[tuple, float] = {}
    for row in frame.index:
        for column in counts:
            raw = frame.at[row, column]
            value = float(raw) if raw is not None and not pd.isna(raw) else math.nan
            if value < 0:
                msg = f"negative count at row {row!r}, column {column!r}"
                raise ValueError(msg)
            values["v", row, column] = value

    relations: list[_Relation] = []
    for ct in column_totals:
        for column in (ct.total, *ct.parts):
            if column not in counts:
                msg = f"column total uses non-count column {column!r}"
                raise ValueError(msg)
        for row in frame.index:
            relations.append(_Relation(("v", row, ct.total), [("v", row, p) for p in ct.parts]))
    total_rows = {rt.total for rt in row_totals}
    for rt in row_totals:
        if rt.total not in frame.index:
            msg = f"unknown total row {rt.total!r}"
            raise KeyError(msg)
        parts = (
            rt.parts
            if rt.parts is not None
            else tuple(r for r in frame.index if r not in total_rows)
        )
        for column in rt.columns or tuple(counts):
            relations.append(_Relation(("v", rt.total, column), [("v", r, column) for r in parts]))
    hidden: set[tuple] = set()
    for cp in complements:
        for row in frame.index:
            key = ("h", row, cp.numerator, cp.denominator)
            values[key] = values["v", row, cp.denominator] - values["v", row, cp.numerator]
            hidden.add(key)
            relations.append(_Relation(("v", row, cp.denominator), [("v", row, cp.numerator), key]))

    missing = {k for k, v in values.items() if math.isnan(v)}
    sensitive = {k for k, v in values.items() if _is_sensitive(v, threshold, suppress_zero)}
    suppressed: dict[tuple, str] = {k: "primary" for k in sensitive if k[0] == "v"}

    def unknown(cell: tuple) -> bool:
        return cell in suppressed or cell in hidden or cell in missing

    def protected(cell: tuple) -> bool:
        return cell in suppressed or (cell in hidden and cell in sensitive)

    def suppress_another(relation: _Relation, reason: str) -> bool:
        visible = [c for c in relation.parts if not unknown(c)]
        nonzero = [c for c in visible if values[c] > 0]
        pool = nonzero or visible
        if not pool and not unknown(relation.total):
            pool = [relation.total]
        if not pool:
            return False
        order = {c: i for i, c in enumerate(relation.cells)}
        choice = min(pool, key=lambda c: (values[c], order[c]))
        suppressed[choice] = reason
        return True

    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        changed = False
        for relation in relations:
            open_cells = [c for c in relation.cells if unknown(c)]
            if len(open_cells) == 1 and protected(open_cells[0]):
                reason = "complement" if open_cells[0] in hidden else "complementary"
                changed |= suppress_another(relation, reason)
        if changed:
            continue
        determined = _determined_cells(relations, unknown)
        exposed = [c for c in determined if protected(c)]
        if not exposed:
            break
        cell = exposed[0]
        candidates = sorted(
            (r for r in relations if cell in r.cells),
            key=lambda r: sum(1 for c in r.cells if unknown(c)),
        )
        if not any(suppress_another(r, "complementary") for r in candidates):
            # every relation of the cell is fully unknown: open a neighbouring relation
            for relation in relations:
                if any(unknown(c) for c in relation.cells) and suppress_another(
                    relation, "complementary"
                ):
                    break
            else:  # pragma: no cover - would need a cell determined with nothing visible
                msg = "could not protect a determined cell"
                raise RuntimeError(msg)

    mask = pd.DataFrame(False, index=frame.index, columns=[*counts, *derived])
    reasons = pd.DataFrame(None, index=frame.index, columns=[*counts, *derived], dtype=object)
    for key, reason in suppressed.items():
        _, row, column = key
        mask.at[row, column] = True
        reasons.at[row, column] = reason
    for name, deps in derived.items():
        for row in frame.index:
            if any(mask.at[row, d] for d in deps):
                mask.at[row, name] = True
                reasons.at[row, name] = "derived"
    table = frame.copy()
    for column in mask.columns:
        if mask[column].any():
            table[column] = table[column].astype(object).where(~mask[column], None)
    protected_complements = tuple(
        (key[1], key[2], key[3]) for key in sorted(hidden & sensitive, key=str)
    )
    return SuppressionResult(
        method="primary + derived + complementary suppression with a linear-system audit",
        threshold=threshold,
        suppress_zero=suppress_zero,
        table=table,
        mask=mask,
        reasons=reasons,
        protected_complements=protected_complements,
        iterations=iterations,
    )


def _determined_cells(
    relations: Sequence[_Relation], unknown: Callable[[tuple], bool]
) -> list[tuple]:
    """Unknown cells whose value follows from the visible cells through the relations."""
    cells = sorted({c for r in relations for c in r.cells if unknown(c)}, key=str)
    if not cells:
        return []
    index = {c: i for i, c in enumerate(cells)}
    rows = []
    for relation in relations:
        row = np.zeros(len(cells))
        touched = False
        for sign, cell in [(1.0, relation.total)] + [(-1.0, c) for c in relation.parts]:
            if cell in index:
                row[index[cell]] += sign
                touched = True
        if touched:
            rows.append(row)
    if not rows:
        return []
    matrix = np.vstack(rows)
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    rank = int(np.sum(singular > 1e-9 * max(1.0, singular.max(initial=0.0))))
    null = vt[rank:]
    if null.shape[0] == 0:
        return list(cells)
    loose = np.max(np.abs(null), axis=0) > 1e-9
    return [cells[i] for i in range(len(cells)) if not loose[i]]


def recoverable_by_subtraction(
    result: SuppressionResult,
    frame: pd.DataFrame,
    *,
    counts: Sequence[str],
    column_totals: Sequence[ColumnTotal] = (),
    row_totals: Sequence[RowTotal] = (),
) -> list[Cell]:
    """Suppressed cells that equal a visible total minus visible cells (for audits and tests).

    Independent of the suppression algorithm: it rebuilds each total relation from the
    declarations and checks whether exactly one of its cells is hidden.
    """
    mask = result.mask
    found: list[Cell] = []
    groups: list[list[Cell]] = []
    for ct in column_totals:
        for row in frame.index:
            groups.append([(row, ct.total), *((row, p) for p in ct.parts)])
    total_rows = {rt.total for rt in row_totals}
    for rt in row_totals:
        parts = (
            rt.parts
            if rt.parts is not None
            else tuple(r for r in frame.index if r not in total_rows)
        )
        for column in rt.columns or tuple(counts):
            groups.append([(rt.total, column), *((r, column) for r in parts)])
    for cells in groups:
        hidden = [c for c in cells if bool(mask.at[c[0], c[1]])]
        if len(hidden) == 1:
            found.append(hidden[0])
    return found
