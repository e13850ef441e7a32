"""Validation: every rule names the row, the column and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.measures.models import MeasureType
from qicollab.schedule.windows import WindowState
from qicollab.submissions import phi
from qicollab.submissions.errors import Severity
from qicollab.submissions.parsing import parse_csv, table_from_rows
from qicollab.submissions.validation import History, validate
from tests.submissions.conftest import PATIENT_HEADER, patient_csv, patient_rows
from tests.submissions.pure import context, layout


def run(rows, *, kind=MeasureType.PROPORTION, patient=False, **options):
    shape = layout(kind, patient=patient)
    table = phi.screen(table_from_rows(rows), shape)
    return validate(table, shape, context(**options))


def rules(result):
    return {(p.row, p.column, p.rule) for p in result.problems}


def agg(period="2026-01", numerator="4", denominator="5", **extra):
    return {"period": period, "numerator": numerator, "denominator": denominator, **extra}


@pytest.mark.parametrize(
    ("row", "column", "rule"),
    [
        (agg(numerator=""), "numerator", "required"),
        (agg(numerator="four"), "numerator", "not_a_number"),
        (agg(numerator="1,234", denominator="2000"), "numerator", "number_format"),
        (agg(numerator="2,5"), "numerator", "number_format"),
        (agg(numerator="2.5"), "numerator", "not_a_whole_number"),
        (agg(numerator="-1"), "numerator", "negative"),
        (agg(numerator="1e400"), "numerator", "not_a_number"),
        (agg(numerator="1e20"), "numerator", "too_large"),
        (agg(denominator="99999999999"), "denominator", "too_large"),
        (agg(numerator="6"), "numerator", "numerator_exceeds_denominator"),
        (agg(exclusions="9"), "exclusions", "exclusions_exceed_denominator"),
        (agg(period="2026-13"), "period", "bad_period"),
        (agg(period="26-03"), "period", "bad_period"),
        (agg(period=""), "period", "required"),
        (agg(period="2031-01"), "period", "unknown_period"),
        (agg(comment="x" * 501), "comment", "text_too_long"),
        (agg(numerator="1", denominator="0"), "denominator", "zero_denominator"),
    ],
)
def test_aggregate_rules(row, column, rule):
    result = run([row])
    assert (1, column, rule) in rules(result)
    problem = next(p for p in result.problems if p.rule == rule)
    assert problem.severity is Severity.ERROR
    assert problem.message
    assert problem.fix


def test_excel_dates_in_the_period_column_are_read_as_months():
    rows = [
        agg(period="2026-03-01"),
        agg(period="2026/4"),
        agg(period="2026-05-01 00:00:00"),
        agg(period="Jun-26"),
        agg(period="July 2026"),
    ]
    result = run(rows)
    assert result.ok, result.problems
    assert result.clean["period"].tolist() == [
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-06",
        "2026-07",
    ]


def test_zero_over_zero_is_allowed():
    assert run([agg(numerator="0", denominator="0")]).ok


def test_duplicate_periods_name_the_first_row():
    result = run([agg(), agg(period="2026-02"), agg()])
    (problem,) = result.problems
    assert (problem.row, problem.rule) == (3, "duplicate_period")
    assert "row 1" in problem.message


def test_missing_required_column_is_a_file_problem():
    shape = layout()
    table = phi.screen(parse_csv(b"period,numerator\n2026-01,4\n", "f.csv"), shape)
    result = validate(table, shape, context())
    (problem,) = result.problems
    assert (problem.row, problem.column, problem.rule) == (1, "denominator", "missing_column")


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (WindowState.LOCKED, "locked"),
        (WindowState.CLOSED_AFTER_DEADLINE, "deadline"),
        (WindowState.NOT_YET_OPEN, "not opened"),
    ],
)
def test_closed_windows_say_why(reason, words):
    result = run([agg(period="2025-01")], closed={"2025-01": reason})
    (problem,) = result.problems
    assert problem.rule == "window_closed"
    assert words in problem.message


def test_mean_measures():
    kind = MeasureType.MEAN
    assert run([{"period": "2026-01", "value": "27.5", "denominator": "900"}], kind=kind).ok
    result = run([{"period": "2026-01", "value": "-1", "denominator": "900"}], kind=kind)
    assert (1, "value", "below_minimum") in rules(result)
    result = run([{"period": "2026-01", "value": "3", "denominator": "0"}], kind=kind)
    assert (1, "denominator", "zero_denominator") in rules(result)


def test_rate_denominators_may_be_fractional():
    assert run([agg(numerator="2", denominator="1450.5")], kind=MeasureType.RATE).ok
    assert run([agg(numerator="9", denominator="5")], kind=MeasureType.RATE).ok


def patient(**changes):
    row = dict(
        zip(
            PATIENT_HEADER.split(","),
            patient_rows(1)[0].split(","),
            strict=True,
        )
    )
    return {**row, **changes}


@pytest.mark.parametrize(
    ("changes", "column", "rule"),
    [
        ({"sex": "m"}, "sex", "unknown_code"),
        ({"asa_class": "1"}, "asa_class", "unknown_code"),
        ({"age_band": "95-99"}, "age_band", "unknown_code"),
        ({"emergency": "yes"}, "emergency", "not_binary"),
        ({"died_30d": "2"}, "died_30d", "not_binary"),
        ({"bmi": "5"}, "bmi", "below_minimum"),
        ({"bmi": "95"}, "bmi", "above_maximum"),
        ({"event_month": "13"}, "event_month", "above_maximum"),
        ({"event_month": "0"}, "event_month", "below_minimum"),
        ({"event_year": "1999"}, "event_year", "below_minimum"),
        ({"event_year": "2026", "event_month": "9"}, "event_year", "event_in_future"),
        ({"case_key": "-bad"}, "case_key", "bad_case_key"),
        ({"case_key": ""}, "case_key", "required"),
        ({"event_year": "2024"}, "event_year", "unknown_period"),
    ],
)
def test_patient_rules(changes, column, rule):
    result = run([patient(**changes)], patient=True)
    assert (1, column, rule) in rules(result), result.problems


def test_leading_zero_codes_get_a_spreadsheet_hint():
    result = run([patient(asa_class="1")], patient=True)
    assert "leading zeros" in result.problems[0].fix


def test_duplicate_case_keys():
    result = run([patient(), patient(), patient(case_key="OTHER1")], patient=True)
    (problem,) = result.problems
    assert (problem.row, problem.rule) == (2, "duplicate_case_key")


def test_closed_year_is_one_problem_not_one_per_case():
    rows = [patient(case_key=f"K{i}", event_year="2025") for i in range(50)]
    result = run(rows, patient=True, closed={"2025": WindowState.LOCKED})
    (problem,) = result.problems
    assert problem.rule == "window_closed"
    assert "50 row(s)" in problem.message
    assert result.error_rows.sum() == 50


def test_history_warnings():
    rates = np.array([0.80, 0.82, 0.78, 0.81, 0.79, 0.80, 0.83, 0.77])
    history = History(rates=rates, denominators=np.full(8, 50.0))
    result = run([agg(numerator="10", denominator="50")], history=history)
    assert result.ok
    assert result.warning_count >= 1
    (warning,) = [p for p in result.problems if p.column == "numerator"]
    assert warning.severity is Severity.WARNING
    assert warning.rule == "history_range"
    quiet = run([agg(numerator="40", denominator="50")], history=history)
    assert quiet.warning_count == 0


def test_modified_z_score_warning_inside_the_fences():
    # A wide IQR but a tight MAD: the z-score catches what the fences miss.
    rates = np.array([0.48, 0.49, 0.5, 0.5, 0.51, 0.52, 0.9, 0.9, 0.1, 0.1])
    history = History(rates=rates, denominators=np.full(10, 100.0))
    result = run([agg(numerator="62", denominator="100")], history=history)
    assert {p.rule for p in result.problems} == {"history_zscore"}


def test_short_history_gives_no_warnings():
    history = History(rates=np.array([0.8, 0.8]), denominators=np.array([50.0, 50.0]))
    assert run([agg(numerator="1", denominator="50")], history=history).warning_count == 0


def test_problems_are_capped_but_counted():
    rows = [agg(period=f"2026-{m:02d}", numerator="x") for m in range(1, 13)]
    result = run(rows, max_problems=5)
    assert len(result.problems) == 5
    assert result.error_count == 12
    assert result.counts == {"not_a_number": 12}


def test_validating_100k_patient_rows_is_fast():
    import time

    shape = layout(patient=True)
    table = phi.screen(parse_csv(patient_csv(*patient_rows(100_000)), "big.csv"), shape)
    start = time.perf_counter()
    result = validate(table, shape, context())
    elapsed = time.perf_counter() - start
    assert result.ok, result.problems[:3]
    assert elapsed < 1.5
