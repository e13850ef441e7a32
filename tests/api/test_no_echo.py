"""Nothing the screen would refuse is echoed back (issue 14, item 3).

Planted identifiers are sent where they do not belong (a period cell, an over-long comment, a
case key, a header, a FHIR resourceType, an unknown measure code); the answers (API errors,
validation problems, OperationOutcomes) may say what is wrong but must not contain the value.
"""

from __future__ import annotations

import pytest

from qicollab.submissions.identifiers import given_names, safe_value, scrub, surnames
from tests.privacy.corpus import PLANTED

#: One identifier of each category, as typed.
SAMPLES = [identifiers[0] for identifiers in PLANTED.values()]


def _secret_parts(text: str) -> list[str]:
    """The parts of ``text`` that identify: digit runs, addresses' words, names."""
    parts = [part.strip(",.:()") for part in text.split()]
    found = [p for p in parts if sum(c.isdigit() for c in p) >= 3 or "@" in p or "." in p[1:-1]]
    found += [p for p in parts if p[:1].isupper() and p.lower() in surnames() | given_names()]
    return [p for p in found if len(p) >= 3]


SECRET_PARTS = {text: _secret_parts(text) for text in SAMPLES}


def _no_echo(body: str, text: str) -> None:
    for part in SECRET_PARTS[text]:
        assert part not in body, (part, body[:300])


@pytest.mark.parametrize("text", SAMPLES)
def test_api_errors_never_quote_an_identifier(api, text):
    client = api("officer")
    cases = [
        {"measure": "HH", "rows": [{"period": text, "numerator": 1, "denominator": 2}]},
        {
            "measure": "HH",
            "rows": [{"period": "2026-01", "numerator": 1, "denominator": 2, "comment": text * 80}],
        },
        {"measure": text, "rows": [{"period": "2026-01", "numerator": 1, "denominator": 2}]},
        {"measure": "HH", "rows": [{"period": "2026-01", "numerator": text, "denominator": 2}]},
    ]
    for payload in cases:
        response = client.post_json(
            "/api/submissions/aggregate?dry_run=true", payload, expect_errors=True
        )
        _no_echo(response.text, text)
    fhir = client.post(
        "/api/fhir/MeasureReport?dry_run=true",
        f'{{"resourceType": "{text}"}}'.encode(),
        content_type="application/fhir+json",
        expect_errors=True,
    )
    assert fhir.status_int >= 400
    _no_echo(fhir.text, text)


@pytest.mark.parametrize("text", SAMPLES)
def test_patient_rows_never_quote_an_identifying_key_or_cell(api, text):
    row = {
        "case_key": text,
        "event_year": 2026,
        "age_band": text,
        "sex": "F",
        "asa_class": "01",
        "emergency": 0,
        "bmi": 23.5,
        "died_30d": 0,
    }
    response = api("officer").post_json(
        "/api/submissions/patient?dry_run=true",
        {"measure": "SURG", "rows": [row]},
        expect_errors=True,
    )
    _no_echo(response.text, text)


def test_every_sample_has_a_secret_part():
    assert all(
        SECRET_PARTS[text]
        for text in SAMPLES
        if text not in {"fingerprint on file", "photo attached: IMG_2041.jpg"}
    )


def test_safe_values_keep_numbers_and_codes():
    assert [safe_value(v) for v in ("12", "2026-01", "HH", "90+", "age_band")] == [
        "12",
        "2026-01",
        "HH",
        "90+",
        "age_band",
    ]
    assert safe_value("John Smith") == "**** *****"
    assert scrub("the column 'jane_doe_dob_1950_03_14_ssn_123_45_6789' looks odd") == (
        "the column '****_***_***_****_**_**_…' looks odd"
    )
