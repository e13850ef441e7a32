"""PHI is refused at the door: by column, by value, under the de-identification profile."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from qicollab.members.models import DeidProfile
from qicollab.submissions import phi
from qicollab.submissions.errors import PHIRefusedError
from qicollab.submissions.models import Submission, SubmissionBatch
from qicollab.submissions.parsing import parse_csv, table_from_rows
from tests.submissions.conftest import PATIENT_HEADER, aggregate_csv, patient_csv, patient_rows
from tests.submissions.pure import layout

#: One example of every kind, inside an aggregate comment; the secret part must never show.
EXAMPLES = [
    ("phi_ssn", "ssn 123-45-6789 noted", "123-45-6789"),
    ("phi_email", "ask jane.doe@example.org", "jane.doe"),
    ("phi_url", "see https://portal.example/chart/77", "portal"),
    ("phi_url", "see www.example.com", "example"),
    ("phi_ip", "uploaded from 192.168.10.44", "192.168"),
    ("phi_ip", "host fe80::1ff:fe23", "fe80"),
    ("phi_phone", "call (555) 867-5309", "867"),
    ("phi_phone", "call +44 20 7946 0958", "7946"),
    ("phi_date", "admitted 03/14/2026", "03/14"),
    ("phi_date", "admitted 2026-03-14", "2026-03-14"),
    ("phi_date", "admitted 14 Mar 2026", "14 Mar"),
    ("phi_date", "admitted March 14, 2026", "March 14"),
    ("phi_date", "admitted 14.03.26", "14.03"),
    ("phi_date", "fell 3 May", "3 May"),
    ("phi_age_over_89", "patient aged 94", "94"),
    ("phi_age_over_89", "a 102 yo man", "102"),
    ("phi_zip", "lives in 02139", "02139"),
    ("phi_labelled_number", "account 123456789012", "123456789012"),
    ("phi_digits", "noted 123456789012", "123456789012"),
]


@pytest.mark.parametrize(("rule", "text", "secret"), EXAMPLES)
def test_every_kind_is_found_and_masked(rule, text, secret):
    table = phi.resolve_columns(
        table_from_rows([{"period": "2026-01", "numerator": 1, "denominator": 2, "comment": text}]),
        layout(),
    )
    problems = phi.sweep(table, layout())
    assert [p.rule for p in problems] == [rule]
    problem = problems[0]
    assert secret not in problem.value
    assert secret not in problem.message
    assert problem.value
    assert set(problem.value) <= set("*-.:/()+ @,…")
    assert (problem.row, problem.column) == (1, "comment")


@pytest.mark.parametrize(
    "text",
    [
        "staff may have missed two audits",
        "MAR audit completed",
        "ages 90+ grouped",
        "denominator 12,345 patient-days",
        "rate 1.5 per 1000",
        "new unit opened in week 3",
        "June: new ICU opened with 12 beds",
        "fell in October",
        "",
    ],
)
def test_ordinary_comments_pass(text):
    table = table_from_rows(
        [{"period": "2026-01", "numerator": 1, "denominator": 2, "comment": text}]
    )
    assert phi.sweep(phi.resolve_columns(table, layout()), layout()) == []


def test_ssn_is_masked_to_its_shape():
    assert phi.mask("123-45-6789") == "***-**-****"
    assert phi.mask("x" * 40).endswith("…")


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ("patient_name", "phi_identifier_column"),
        ("MRN", "phi_identifier_column"),
        ("Medical Record Number", "phi_identifier_column"),
        ("DOB", "phi_identifier_column"),
        ("date_of_birth", "phi_identifier_column"),
        ("SSN", "phi_identifier_column"),
        ("home address", "phi_identifier_column"),
        ("phone", "phi_identifier_column"),
        ("email", "phi_identifier_column"),
        ("zip", "phi_identifier_column"),
        ("admission_date", "phi_identifier_column"),
        ("surname", "phi_identifier_column"),
        ("notes", "unknown_column"),
    ],
)
def test_columns_outside_the_template_are_refused(header, rule):
    data = f"case_key,{header}\nK1,x\n".encode()
    with pytest.raises(PHIRefusedError) as caught:
        phi.resolve_columns(parse_csv(data, "f.csv"), layout(patient=True))
    (problem,) = caught.value.problems
    assert problem.rule == rule
    assert problem.row == 1


def test_labels_are_accepted_as_headers():
    table = parse_csv(b"Period (YYYY-MM),Numerator,Denominator\n2026-01,1,2\n", "f.csv")
    assert phi.resolve_columns(table, layout()).columns == ("period", "numerator", "denominator")


def test_safe_harbor_refuses_month_of_event():
    safe = layout(patient=True, profile=DeidProfile.SAFE_HARBOR)
    assert "event_month" not in safe.names
    with pytest.raises(PHIRefusedError) as caught:
        phi.screen(parse_csv(patient_csv(*patient_rows(2)), "f.csv"), safe)
    (problem,) = caught.value.problems
    assert problem.rule == "phi_month_not_allowed"
    assert "safe-harbor" in problem.message


def test_limited_data_set_needs_a_data_use_agreement():
    without = layout(patient=True, dua=False)
    with pytest.raises(PHIRefusedError) as caught:
        phi.screen(parse_csv(patient_csv(*patient_rows(2)), "f.csv"), without)
    assert "data use agreement" in caught.value.problems[0].message
    with_dua = layout(patient=True, dua=True)
    assert len(phi.screen(parse_csv(patient_csv(*patient_rows(2)), "f.csv"), with_dua)) == 2


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("1234567", "phi_digits"),
        ("MRN0012345", "phi_labelled_number"),
        ("02139", "phi_digits"),
        ("123-45-6789", "phi_key_not_opaque"),
        ("2026-03-14", "phi_key_not_opaque"),
        ("JohnSmith", "phi_name"),
    ],
)
def test_case_keys_that_look_like_identifiers(key, rule):
    rows = patient_rows(2)
    rows[1] = key + rows[1][rows[1].index(",") :]
    with pytest.raises(PHIRefusedError) as caught:
        phi.screen(parse_csv(patient_csv(*rows), "f.csv"), layout(patient=True))
    assert [(p.rule, p.row, p.column) for p in caught.value.problems] == [(rule, 3, "case_key")]


def test_opaque_hex_keys_pass():
    keys = [f"C{value:012x}" for value in np.random.default_rng(1).integers(0, 2**48, 2000)]
    rows = [key + row[row.index(",") :] for key, row in zip(keys, patient_rows(2000), strict=True)]
    table = phi.screen(parse_csv(patient_csv(*rows), "f.csv"), layout(patient=True))
    assert len(table) == 2000


def test_invalid_cells_of_coded_columns_are_swept_too():
    rows = patient_rows(2)
    rows[0] = rows[0].replace(",F,", ",jane@example.org,").replace(",M,", ",jane@example.org,")
    with pytest.raises(PHIRefusedError) as caught:
        phi.screen(parse_csv(patient_csv(*rows), "f.csv"), layout(patient=True))
    assert [(p.rule, p.column) for p in caught.value.problems] == [("phi_email", "sex")]


def test_numeric_columns_on_patient_rows_refuse_record_numbers():
    rows = patient_rows(1)
    parts = rows[0].split(",")
    parts[7] = "12345678"
    with pytest.raises(PHIRefusedError) as caught:
        phi.screen(parse_csv(patient_csv(",".join(parts)), "f.csv"), layout(patient=True))
    assert caught.value.problems[0].column == "bmi"


def test_sweep_text_for_reasons():
    assert phi.sweep_text("late cases found", field="reason") == []
    (problem,) = phi.sweep_text("call 555-867-5309", field="reason")
    assert problem.column == "reason"
    assert "867" not in problem.value


def test_sweep_is_fast_on_100k_rows():
    n = 100_000
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "case_key": [f"C{v:012x}" for v in rng.integers(0, 2**48, n)],
            "event_year": "2026",
            "event_month": "3",
            "age_band": rng.choice(["18-49", "90+"], n),
            "sex": rng.choice(["F", "M"], n),
            "asa_class": "01",
            "emergency": "0",
            "bmi": "23.5",
            "died_30d": "0",
        }
    )
    table = parse_csv(frame.to_csv(index=False).encode(), "big.csv")
    start = time.perf_counter()
    phi.screen(table, layout(patient=True))
    assert time.perf_counter() - start < 1.0


class TestRefusedFiles:
    def test_refused_file_is_not_stored_or_logged(self, world, service, db_session, caplog):
        caplog.set_level(logging.DEBUG)
        data = aggregate_csv("2026-01,1,2,,call 555-867-5309")
        with pytest.raises(PHIRefusedError) as caught:
            service.commit(
                member=world.member, measure=world.hh, data=data, filename="f.csv", actor="x"
            )
        db_session.rollback()
        assert db_session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 0
        assert db_session.scalar(sa.select(sa.func.count()).select_from(SubmissionBatch)) == 0
        assert "867-5309" not in caplog.text
        assert "867-5309" not in str(caught.value)
        assert all("867" not in p.value + p.message for p in caught.value.problems)

    def test_patient_file_with_dates_is_refused_by_the_service(self, world, service, caplog):
        caplog.set_level(logging.DEBUG)
        header = PATIENT_HEADER.replace("event_month", "surgery_date")
        rows = [row.replace(",2026,1,", ",2026,2026-01-04,") for row in patient_rows(1)]
        with pytest.raises(PHIRefusedError) as caught:
            service.preview(
                member=world.member,
                measure=world.surg,
                data=patient_csv(*rows, header=header),
                filename="f.csv",
            )
        assert caught.value.problems[0].rule == "phi_identifier_column"
        assert "2026-01-04" not in caplog.text

    def test_reasons_are_swept(self, world, service):
        with pytest.raises(PHIRefusedError):
            service.commit(
                member=world.member,
                measure=world.hh,
                data=aggregate_csv("2026-01,1,2,,"),
                filename="f.csv",
                actor="x",
                reason="per jane.doe@example.org",
            )
