"""The de-identification screen on the planted and clean corpora (issue 14, item 2)."""

from __future__ import annotations

from collections import Counter

import pytest

from qicollab.submissions import identifiers
from tests.privacy import corpus


def test_the_planted_corpus_covers_all_eighteen_categories_with_200_identifiers():
    assert len(corpus.PLANTED) == 18
    assert sum(map(len, corpus.PLANTED.values())) + len(corpus.PLANTED_KEYS) >= 200
    assert all(len(found) >= 6 for found in corpus.PLANTED.values())


def test_at_least_98_percent_of_planted_identifiers_are_refused_in_every_channel():
    planted = corpus.planted_with_disguises()
    missed = [entry for entry in planted if not identifiers.screen_text(entry[2])]
    missed_keys = [key for key in corpus.PLANTED_KEYS if not identifiers.screen_key(key)]
    total = len(planted) + len(corpus.PLANTED_KEYS)
    rate = 1 - (len(missed) + len(missed_keys)) / total
    assert rate >= 0.98, (rate, missed[:20], missed_keys)
    by_category = Counter(category for category, _, _ in missed)
    totals = Counter(category for category, _, _ in planted)
    # No category may be a blind spot hidden by the others.
    assert all(by_category[name] / totals[name] <= 0.05 for name in totals), by_category


def test_at_most_one_percent_of_the_clean_corpus_is_refused():
    refused = [text for text in corpus.CLEAN_COMMENTS if identifiers.screen_text(text)]
    keys = corpus.clean_keys(10_000)
    refused_keys = [key for key in keys if identifiers.screen_key(key)]
    rate = (len(refused) + len(refused_keys)) / (len(corpus.CLEAN_COMMENTS) + len(keys))
    assert rate <= 0.01, (refused, refused_keys[:20])
    assert len(refused) <= 1, refused


@pytest.mark.parametrize(
    "text",
    [
        "June: new ICU opened with 12 beds",
        "Fell in October",  # a month alone is not an identifier in aggregate data
        "May audit: staff may have missed two",
    ],
)
def test_month_names_alone_pass_unless_months_are_refused(text):
    assert identifiers.screen_text(text) == ()


def test_months_are_refused_where_asked():
    (finding,) = identifiers.screen_text("fell in October", months=True)
    assert finding.rule == "phi_month"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19", "123-45-6789"),
        ("1\u200b23-45\u200d-6789", "123-45-6789"),
        ("\u0663\u0661\u0662 555 0188", "312 555 0188"),
        ("Jose\u0301", "Jose"),
        ("a\x00b\tc", "ab c"),
    ],
)
def test_text_is_normalised_before_any_check(text, expected):
    assert identifiers.normalise(text) == expected


def test_findings_carry_only_the_shape_of_what_they_found():
    findings = identifiers.screen_text("call John Smith on 312-555-0188, ssn 078-05-1120")
    rules = {finding.rule for finding in findings}
    assert {"phi_name", "phi_phone", "phi_ssn"} <= rules
    for finding in findings:
        for secret in ("John", "Smith", "312", "0188", "078"):
            assert secret not in finding.shape
            assert secret not in finding.message


def test_refuse_identifying_names_the_field_not_the_value():
    with pytest.raises(identifiers.IdentifyingTextError) as caught:
        identifiers.refuse_identifying("correction_reason", "asked Mrs Patel")
    assert caught.value.field == "correction_reason"
    assert "correction reason" in str(caught.value)
    assert "Patel" not in str(caught.value)
    identifiers.refuse_identifying("correction_reason", "June census corrected")


@pytest.mark.parametrize("key", ["K7Q2-84XZ", "7QF2K9", "a1b2c3d4", "QX-0042-B"])
def test_opaque_keys_pass(key):
    assert identifiers.screen_key(key) == ()


def test_file_names_are_stored_as_an_opaque_name_and_the_extension():
    assert identifiers.opaque_filename("John Smith 1950-03-14.CSV", "ab12") == "upload-ab12.csv"
    assert identifiers.opaque_filename("no extension", "ab12") == "upload-ab12"
