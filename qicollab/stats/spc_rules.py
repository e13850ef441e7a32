"""Special-cause rules for control and run charts, vectorised over many series at once.

Every function takes 2-D arrays (one row per series or chart phase, one column per point; 1-D
input is treated as one row and returned 1-D) so that the platform's bulk runs (20,000 series)
evaluate each rule with a handful of numpy operations instead of a Python loop per series.

Sequence rules (runs, trends, shifts, k-of-m windows) act on *consecutive usable points*. The
chart engine (:mod:`qicollab.stats.spc`) first left-justifies the usable points of each row with
:func:`compact` (usable = present, not excluded, not missing), so a sequence spans a missing or
excluded period, as the Anhøj runs analysis of qicharts2 does; padding after the last usable
point is marked by ``valid`` and never takes part in a run.

Rule semantics, from design/METHODS.md part B:

* **Anhøj** (qicharts2 ``runs.analysis``): points on the centre line are dropped; signal when the
  longest run exceeds ``round(log2 n) + 3`` (Schilling 2012) or the number of crossings is below
  ``qbinom(0.05, n - 1, 0.5)`` (Chen 2010), n = useful points (:func:`anhoej_critical_values`).
* **Making Data Count / PowerBI-SPC**: outside limits (strict), shift (``n`` points on one side,
  a point on the centre line breaks the run, all points of the run flagged), trend (``n`` points
  strictly increasing or decreasing, ties break, all points flagged, a later trend wins a shared
  turning point as in PowerBI-SPC's back-fill), two-in-three (:func:`two_in_three`, three
  variants: MDC November 2023, NHSRplotthedots 0.2.2 and PowerBI-SPC).
* **Western Electric / Nelson** with luca-scr/qcc semantics (:func:`western_electric`,
  :func:`nelson`): zones in sigma units of the chart; k-of-m windows must be complete and the
  window's last point must itself be beyond; run rules flag from the point where the run first
  reaches its length (no back-fill); when several fire, the lowest rule number wins
  (:func:`qcc_rule_numbers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TwoInThree = Literal["mdc2023", "nhsr", "powerbi"]
TWO_IN_THREE_VARIANTS: tuple[str, ...] = ("mdc2023", "nhsr", "powerbi")

#: Window sizes of the Western Electric rules 2-4 and the Nelson rules 2-8 (qcc v3.0).
WE_RULES = (1, 2, 3, 4)
NELSON_RULES = (1, 2, 3, 4, 5, 6, 7, 8)


def _rows(a: npt.ArrayLike, dtype: type | None = None) -> np.ndarray:
    arr = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
    if arr.ndim == 1:
        return arr[np.newaxis, :]
    if arr.ndim != 2:
        msg = f"expected a 1-D or 2-D array, got {arr.ndim} dimensions"
        raise ValueError(msg)
    return arr


def _like(result: np.ndarray, template: npt.ArrayLike) -> np.ndarray:
    return result[0] if np.ndim(template) == 1 else result


def _bcast(a: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    return np.broadcast_to(np.asarray(a, dtype=float), shape)


def _valid(valid: npt.ArrayLike | None, shape: tuple[int, ...]) -> BoolArray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(_rows(valid, bool), shape)


# --- compaction ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compaction:
    """The usable points of each row moved to the front, keeping their order.

    ``order[r, j]`` is the original column of the j-th usable point of row r (for j < counts[r];
    the rest point at unusable columns), ``valid`` marks the first ``counts[r]`` columns.
    """

    order: IntArray
    counts: IntArray
    valid: BoolArray

    def take(self, values: np.ndarray) -> np.ndarray:
        """Left-justify ``values`` (same shape as the mask) in the usable order."""
        return np.take_along_axis(values, self.order, axis=1)

    def put(self, compacted: np.ndarray, fill: object = 0) -> np.ndarray:
        """Scatter a compacted result back to the original columns (``fill`` elsewhere)."""
        out = np.full(compacted.shape, fill, dtype=compacted.dtype)
        source = np.where(self.valid, compacted, fill)
        np.put_along_axis(out, self.order, source, axis=1)
        return out


def compact(mask: npt.ArrayLike) -> Compaction:
    """Stable left-justification of the True columns of each row (one argsort)."""
    m = _rows(mask, bool)
    order = np.argsort(~m, axis=1, kind="stable")
    counts = m.sum(axis=1)
    valid = np.arange(m.shape[1])[np.newaxis, :] < counts[:, np.newaxis]
    return Compaction(order, counts, valid)


# --- runs ------------------------------------------------------------------------------------


def _run_ids(key: np.ndarray) -> tuple[IntArray, BoolArray]:
    """Global run ids over the flattened rows: a run is a block of equal non-zero keys."""
    starts = np.ones(key.shape, dtype=bool)
    starts[:, 1:] = key[:, 1:] != key[:, :-1]
    starts |= key == 0
    ids = np.cumsum(starts.ravel()) - 1
    return ids.reshape(key.shape), starts


def run_lengths(
    key: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> tuple[IntArray, IntArray]:
    """For each point, (position in its run, total length of its run).

    A run is a block of consecutive equal non-zero ``key`` values; zero (or an invalid point)
    breaks runs and gets (0, 0). Both arrays are 1 for an isolated point.
    """
    k = _rows(key).astype(np.int64, copy=True)
    k[~_valid(valid, k.shape)] = 0
    ids, starts = _run_ids(k)
    flat_ids = ids.ravel()
    totals = np.bincount(flat_ids)[flat_ids].reshape(k.shape)
    index = np.arange(k.size)
    first = index[starts.ravel()]
    position = (index - first[flat_ids] + 1).reshape(k.shape)
    zero = k == 0
    position[zero] = 0
    totals[zero] = 0
    return _like(position, key), _like(totals, key)


def run_length_ending(key: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> IntArray:
    """Length of the run of equal non-zero keys ending at each point (0 if the key is 0)."""
    return run_lengths(key, valid)[0]


def backfill(flags: npt.ArrayLike, length: int) -> IntArray:
    """Mark the ``length`` points ending at every non-zero flag with its sign; a later flag wins.

    This is the back-fill of NHSRplotthedots' ``ptd_part_of_seven_trend`` and PowerBI-SPC's
    trend/shift rules.
    """
    f = _rows(flags).astype(np.int64)
    out = np.zeros_like(f)
    width = f.shape[1]
    for offset in range(min(length, width)):
        shifted = np.zeros_like(f)
        shifted[:, : width - offset] = f[:, offset:]
        out = np.where(shifted != 0, shifted, out)
    return _like(out, flags)


def diff_signs(values: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> IntArray:
    """sign(y_i - y_(i-1)) at column i (0 at the first column, at ties and next to invalid)."""
    y = _rows(values, float)
    ok = _valid(valid, y.shape) & np.isfinite(y)
    d = np.zeros(y.shape, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        d[:, 1:] = np.sign(y[:, 1:] - y[:, :-1]).astype(np.int64, copy=False) * (
            ok[:, 1:] & ok[:, :-1]
        )
    return _like(d, values)


def sides(values: npt.ArrayLike, centre: npt.ArrayLike) -> IntArray:
    """sign(y - centre): +1 above, -1 below, 0 on the line or missing."""
    y = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        s = np.sign(y - np.asarray(centre, dtype=float))
    return np.nan_to_num(s, nan=0.0).astype(np.int64)


# --- Anhøj runs analysis ---------------------------------------------------------------------


@lru_cache(maxsize=8)
def _critical_table(size: int) -> tuple[IntArray, IntArray]:
    n = np.arange(size + 1)
    with np.errstate(divide="ignore"):
        longest = np.where(n > 0, np.round(np.log2(np.maximum(n, 1))) + 3, 0).astype(np.int64)
    crossings = np.where(n > 0, stats.binom.ppf(0.05, np.maximum(n - 1, 0), 0.5), 0)
    return longest, crossings.astype(np.int64)


def anhoej_critical_values(n_useful: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """(longest-run upper limit, crossings lower limit) for n useful points (0 for n = 0).

    ``round(log2 n) + 3`` (Schilling 2012) and ``qbinom(0.05, n - 1, 0.5)`` (Chen 2010), as in
    qicharts2; tabulated in tests/data/derived_anhoej_critical_values.csv.
    """
    n = np.asarray(n_useful, dtype=np.int64)
    size = max(int(n.max(initial=0)), 1)
    longest, crossings = _critical_table(1 << (size - 1).bit_length())
    return longest[n], crossings[n]


@dataclass(frozen=True, slots=True)
class AnhoejArrays:
    """Anhøj runs analysis per row, and the points that lie in a too-long run."""

    n_useful: IntArray
    longest_run: IntArray
    longest_run_max: IntArray
    crossings: IntArray
    crossings_min: IntArray
    signal: BoolArray
    in_long_run: BoolArray
    run_side: IntArray


def anhoej(
    values: npt.ArrayLike, centre: npt.ArrayLike, valid: npt.ArrayLike | None = None
) -> AnhoejArrays:
    """Longest run and crossings of each row's usable points about its centre line.

    Points on the centre line, missing values and invalid columns are dropped first (they
    neither break nor extend a run). Rows without useful points get zeros and no signal.
    """
    y = _rows(values, float)
    s = np.broadcast_to(sides(y, _bcast(centre, y.shape)), y.shape)
    s = np.where(_valid(valid, y.shape), s, 0)
    packed = compact(s != 0)
    signs = np.where(packed.valid, packed.take(s), 0)
    n_useful = packed.counts.astype(np.int64)
    _, totals = run_lengths(signs)
    longest = totals.max(axis=1, initial=0).astype(np.int64)
    changes = (signs[:, 1:] != signs[:, :-1]) & packed.valid[:, 1:]
    crossings = changes.sum(axis=1).astype(np.int64)
    longest_max, crossings_min = anhoej_critical_values(n_useful)
    has = n_useful > 0
    signal = has & ((longest > longest_max) | (crossings < crossings_min))
    long_compact = (totals > longest_max[:, np.newaxis]) & has[:, np.newaxis]
    in_long = packed.put(long_compact, fill=False)
    return AnhoejArrays(
        n_useful=n_useful,
        longest_run=longest,
        longest_run_max=longest_max,
        crossings=crossings,
        crossings_min=crossings_min,
        signal=signal,
        in_long_run=_like(in_long, values),
        run_side=_like(s, values),
    )


# --- Making Data Count / PowerBI-SPC ---------------------------------------------------------


def outside(values: npt.ArrayLike, upper: npt.ArrayLike, lower: npt.ArrayLike) -> IntArray:
    """+1 above the upper limit, -1 below the lower, 0 otherwise (strict; on a limit is inside)."""
    y = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        above = y > np.asarray(upper, dtype=float)
        below = y < np.asarray(lower, dtype=float)
    return above.astype(np.int64) - below.astype(np.int64)


def shift(side: npt.ArrayLike, points: int = 7, valid: npt.ArrayLike | None = None) -> IntArray:
    """Signed flag on every point of a run of at least ``points`` on one side (0 breaks)."""
    s = _rows(side).astype(np.int64)
    _, totals = run_lengths(s, valid)
    return _like(np.where(totals >= points, s, 0), side)


def side_run_end(side: npt.ArrayLike, points: int = 7) -> IntArray:
    """Signed flag where a same-side run has reached ``points`` (NHSRplotthedots, before
    back-fill: the 7th point of the run and every later one)."""
    s = _rows(side).astype(np.int64)
    position, _ = run_lengths(s)
    return _like(np.where(position >= points, s, 0), side)


def trend_end(
    values: npt.ArrayLike, points: int = 7, valid: npt.ArrayLike | None = None
) -> IntArray:
    """Signed flag at the points that end ``points`` strictly monotone points (before
    back-fill; NHSRplotthedots ``ptd_seven_point_trend``; Nelson 3 with ``points = 6``)."""
    d = _rows(diff_signs(values, valid))
    position, _ = run_lengths(d)
    return _like(np.where(position >= points - 1, d, 0), values)


def trend(values: npt.ArrayLike, points: int = 7, valid: npt.ArrayLike | None = None) -> IntArray:
    """Signed flag on every point of a strictly monotone run of at least ``points`` points.

    Ties break a trend. A turning point shared by an up-trend and a following down-trend takes
    the later one's direction (PowerBI-SPC back-fills trends in order).
    """
    d = _rows(diff_signs(values, valid))
    _, totals = run_lengths(d)
    qualifies = totals >= points - 1
    by_own = np.where(qualifies, d, 0)  # the point ends a qualifying difference
    by_next = np.zeros_like(by_own)  # the point starts one
    by_next[:, :-1] = by_own[:, 1:]
    return _like(np.where(by_next != 0, by_next, by_own), values)


def two_in_three_windows(
    close: npt.ArrayLike, side: npt.ArrayLike | None = None, valid: npt.ArrayLike | None = None
) -> BoolArray:
    """Points in a window of three with >= 2 ``close`` points, all three on one side of the
    mean (NHSRplotthedots ``ptd_two_in_three``; ``side`` None means all on one side)."""
    c = _rows(close).astype(np.int64) != 0
    ok = _valid(valid, c.shape)
    c &= ok
    s = np.ones(c.shape, dtype=np.int64) if side is None else _rows(side).astype(np.int64)
    width = c.shape[1]
    hit = np.zeros(c.shape, dtype=bool)
    if width < 3:
        return _like(hit, close)
    count = c[:, :-2].astype(np.int64) + c[:, 1:-1] + c[:, 2:]
    same = (s[:, :-2] == s[:, 1:-1]) & (s[:, 1:-1] == s[:, 2:]) & (s[:, 2:] != 0)
    full = ok[:, :-2] & ok[:, 1:-1] & ok[:, 2:]
    window = (count >= 2) & same & full
    hit[:, :-2] |= window
    hit[:, 1:-1] |= window
    hit[:, 2:] |= window
    return _like(hit, close)


def two_in_three(
    values: npt.ArrayLike,
    centre: npt.ArrayLike,
    *,
    upper2: npt.ArrayLike,
    lower2: npt.ArrayLike,
    upper3: npt.ArrayLike,
    lower3: npt.ArrayLike,
    variant: TwoInThree = "mdc2023",
    highlight_window: bool = False,
    valid: npt.ArrayLike | None = None,
) -> IntArray:
    """Two of three consecutive points beyond the 2-sigma lines; signed flags.

    ``mdc2023`` (Making Data Count, November 2023): a point is "beyond" when beyond its 2-sigma
    line, including beyond 3 sigma; a window of three with >= 2 beyond on one side and all three
    on that side of the mean flags its beyond points. ``nhsr`` (NHSRplotthedots 0.2.2): as
    ``mdc2023`` but only points strictly between the 2- and 3-sigma lines count. ``powerbi``
    (PowerBI-SPC ``twoInThree``): beyond = +1/-1, the signs of a window are summed (a point
    beyond the opposite line cancels one) and >= 2 flags the window's beyond points; the mean
    plays no part. ``highlight_window`` flags all three points of a window instead.
    """
    y = _rows(values, float)
    shape = y.shape
    ok = _valid(valid, shape) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        above2 = y > _bcast(upper2, shape)
        below2 = y < _bcast(lower2, shape)
    if variant == "nhsr":
        out3 = outside(
            y,
            _bcast(upper3, shape),
            _bcast(lower3, shape),
        )
        above2 &= out3 == 0
        below2 &= out3 == 0
    elif variant not in TWO_IN_THREE_VARIANTS:
        msg = f"two_in_three variant must be one of {TWO_IN_THREE_VARIANTS}, not {variant!r}"
        raise ValueError(msg)
    beyond = (above2.astype(np.int64) - below2.astype(np.int64)) * ok
    flags = np.zeros(shape, dtype=np.int64)
    if shape[1] < 3:
        return _like(flags, values)
    if variant == "powerbi":
        total = beyond[:, :-2] + beyond[:, 1:-1] + beyond[:, 2:]
        window_sign = np.where(total >= 2, 1, np.where(total <= -2, -1, 0))
        full = ok[:, :-2] & ok[:, 1:-1] & ok[:, 2:]
        window_sign = window_sign * full
        for offset in range(3):
            cols = slice(offset, shape[1] - 2 + offset)
            mark = (
                window_sign if highlight_window else window_sign * (beyond[:, cols] == window_sign)
            )
            flags[:, cols] = np.where(mark != 0, mark, flags[:, cols])
        return _like(flags, values)
    side = np.where(ok, sides(y, _bcast(centre, shape)), 0)
    for direction in (1, -1):
        close = beyond == direction
        in_window = _rows(two_in_three_windows(close, side * (side == direction), ok))
        mark = in_window if highlight_window else in_window & close
        flags = np.where(mark, direction, flags)
    return _like(flags, values)


# --- Western Electric and Nelson (qcc semantics) ---------------------------------------------


def _window_count(cond: BoolArray, width: int) -> IntArray:
    """Number of True among the ``width`` points ending at each column (-1 if incomplete)."""
    c = np.cumsum(cond, axis=1, dtype=np.int64)
    out = np.full(cond.shape, -1, dtype=np.int64)
    if cond.shape[1] >= width:
        out[:, width - 1 :] = c[:, width - 1 :]
        out[:, width:] -= c[:, :-width]
    return out


def _k_of_m(z: FloatArray, ok: BoolArray, level: float, k: int, m: int) -> BoolArray:
    hit = np.zeros(z.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for direction in (1, -1):
            beyond = (direction * z > level) & ok
            hit |= beyond & (_window_count(beyond, m) >= k)
    return hit


def _run_of(cond: BoolArray, length: int) -> BoolArray:
    position, _ = run_lengths(cond.astype(np.int64))
    return position >= length


def western_electric(z: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> dict[int, BoolArray]:
    """Western Electric rules 1-4 on z = (y - centre) / sigma, per point (qcc flags)."""
    zz = _rows(z, float)
    ok = _valid(valid, zz.shape) & np.isfinite(zz)
    side = np.where(ok, sides(zz, 0.0), 0)
    with np.errstate(invalid="ignore"):
        rule1 = (np.abs(zz) > 3) & ok
    position, _ = run_lengths(side)
    found = {
        1: rule1,
        2: _k_of_m(zz, ok, 2, 2, 3),
        3: _k_of_m(zz, ok, 1, 4, 5),
        4: position >= 8,
    }
    return {k: _like(v, z) for k, v in found.items()}


def nelson(z: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> dict[int, BoolArray]:
    """Nelson rules 1-8 on z = (y - centre) / sigma, per point (qcc flags)."""
    zz = _rows(z, float)
    ok = _valid(valid, zz.shape) & np.isfinite(zz)
    side = np.where(ok, sides(zz, 0.0), 0)
    with np.errstate(invalid="ignore"):
        rule1 = (np.abs(zz) > 3) & ok
        within1 = (np.abs(zz) <= 1) & ok
        beyond1 = (np.abs(zz) > 1) & ok
    side_position, _ = run_lengths(side)
    d = _rows(diff_signs(zz, ok))
    trend_position, _ = run_lengths(d)
    alternating = np.zeros(zz.shape, dtype=bool)
    alternating[:, 2:] = (d[:, 2:] * d[:, 1:-1]) < 0
    both_sides = (_window_count(side > 0, 8) > 0) & (_window_count(side < 0, 8) > 0)
    found = {
        1: rule1,
        2: side_position >= 9,
        3: trend_position >= 5,
        4: _run_of(alternating, 12),
        5: _k_of_m(zz, ok, 2, 2, 3),
        6: _k_of_m(zz, ok, 1, 4, 5),
        7: _run_of(within1, 15),
        8: _run_of(beyond1, 8) & both_sides,
    }
    return {k: _like(v, z) for k, v in found.items()}


def qcc_rule_numbers(
    z: npt.ArrayLike,
    *,
    rule_set: Literal["western-electric", "nelson"] = "western-electric",
    rules: tuple[int, ...] | None = None,
) -> IntArray:
    """The lowest violated rule number per point (0 for none), like qcc's ``qccRules``."""
    found = western_electric(z) if rule_set == "western-electric" else nelson(z)
    chosen = tuple(sorted(found)) if rules is None else tuple(sorted(rules))
    shape = np.shape(found[1])
    out = np.zeros(shape, dtype=np.int64)
    for number in reversed(chosen):
        out = np.where(found[number], number, out)
    return out
