"""Property tests: whatever arrives, the parsers and validator answer with a typed error.

Random bytes, random CSV-like text under a valid header, random cells, and random XLSX
workbooks must each either validate or raise a :class:`SubmissionError` subclass (which the
portal shows as a table and the API as a 4xx), never any other exception (a 500).
"""

from __future__ import annotations

import io

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qicollab.measures.models import MeasureType
from qicollab.submissions import phi
from qicollab.submissions.errors import SubmissionError
from qicollab.submissions.parsing import Limits, parse_upload, table_from_rows
from qicollab.submissions.validation import validate
from tests.submissions.conftest import PATIENT_HEADER
from tests.submissions.pure import context, layout

LAYOUTS = {
    "proportion": layout(MeasureType.PROPORTION),
    "rate": layout(MeasureType.RATE),
    "mean": layout(MeasureType.MEAN),
    "patient": layout(patient=True),
}
LIMITS = Limits(max_bytes=200_000, max_rows=500, max_columns=30, max_field_chars=300)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pipeline(data: bytes, name: str, shape_name: str) -> None:
    shape = LAYOUTS[shape_name]
    try:
        table = parse_upload(data, name, LIMITS)
        screened = phi.screen(table, shape)
        result = validate(screened, shape, context())
    except SubmissionError as error:  # the typed refusal the portal and API show
        assert error.problems or error.message  # noqa: PT017
        for problem in error.problems:
            assert problem.rule
            assert problem.message
        return
    assert result.error_count + result.warning_count >= len(result.problems)
    for problem in result.problems:
        assert problem.rule
        assert problem.fix
        assert problem.row is None or problem.row >= 1


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["f.csv", "f.xlsx", "f", "f.xlsm"]))
def test_random_bytes(data, name):
    pipeline(data, name, "proportion")


CELL = st.one_of(
    st.text(
        alphabet=st.sampled_from(list('0123456789-.,;"\n\r\t /:@+=aAzZ\u00e9\u00a0\ufeff')),
        max_size=12,
    ),
    st.sampled_from(["2026", "2026-01", "01", "F", "M", "90+", "0", "1", "K1"]),
)


@FUZZ
@given(
    st.sampled_from(sorted(LAYOUTS)),
    st.lists(st.lists(CELL, min_size=0, max_size=12), max_size=30),
    st.sampled_from([",", ";", "\t"]),
)
def test_random_csv_text_under_a_valid_header(shape_name, rows, sep):
    shape = LAYOUTS[shape_name]
    header = sep.join(shape.names) if shape_name != "patient" else PATIENT_HEADER
    body = "\n".join(sep.join(cells) for cells in rows)
    pipeline((header + "\n" + body).encode(), "f.csv", shape_name)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)


@FUZZ
@given(
    st.sampled_from(sorted(LAYOUTS)),
    st.lists(
        st.dictionaries(
            st.sampled_from([*LAYOUTS["patient"].names, "period", "numerator", "denominator"]),
            VALUES,
            max_size=10,
        ),
        max_size=20,
    ),
)
def test_random_cells(shape_name, rows):
    shape = LAYOUTS[shape_name]
    try:
        screened = phi.screen(table_from_rows(rows, limits=LIMITS), shape)
        validate(screened, shape, context())
    except SubmissionError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(VALUES, max_size=6), max_size=8))
def test_random_workbooks(rows):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["period", "numerator", "denominator"])
    for row in rows:
        try:
            sheet.append([v if not isinstance(v, str) else v.replace("\x00", "") for v in row])
        except (ValueError, TypeError, openpyxl.utils.exceptions.IllegalCharacterError):
            continue
    buffer = io.BytesIO()
    workbook.save(buffer)
    pipeline(buffer.getvalue(), "f.xlsx", "proportion")
