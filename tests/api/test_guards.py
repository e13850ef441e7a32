"""Requests a client can send that must never reach a 500 (issue 14, item 6)."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from qicollab.guards import MAX_JSON_DEPTH, MAX_JSON_KEYS, json_depth

TOO_BIG = str(2**63)


def _secured(response: Any) -> None:
    assert 400 <= response.status_int < 500, (response.status, response.body[:200])
    assert "Content-Security-Policy" in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/%ff",
        "/api/%ff",
        "/?x=%ff",
        f"/api/submissions/{TOO_BIG}",
        f"/api/submissions/{'9' * 30}",
        f"/api/pdsa/{TOO_BIG}",
        f"/members/{TOO_BIG}",
        f"/members/{TOO_BIG}/submissions",
        f"/jobs/{TOO_BIG}",
        f"/runs/{TOO_BIG}/reports",
        f"/learning-sessions/{TOO_BIG}",
        f"/admin/users/{TOO_BIG}",
    ],
)
def test_bad_paths_and_huge_ids_are_4xx_with_security_headers(api, path):
    _secured(api("coordinator").get(path, expect_errors=True))


# WebOb's test request spools bodies over 10 KB to a temporary file that it never closes.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_bodies_that_are_not_utf8_or_too_deep_or_too_wide_are_refused(api):
    client = api("officer")
    post = "/api/submissions/aggregate"
    cases = {
        "not_utf8": b'{"measure": "\xff\xfe"}',
        "too_deep": b"[" * 100_000,
        "too_many_keys": json.dumps(
            {"measure": "HH", "rows": [{f"k{i}": 1 for i in range(40_000)}]}
        ).encode(),
    }
    for code, body in cases.items():
        response = client.post(post, body, content_type="application/json", expect_errors=True)
        _secured(response)
        assert response.json["code"] == code
    gc.collect()  # close WebOb's spooled bodies here, where their warning is expected
    form = client.post(
        "/login",
        b"email=%ff%fe",
        content_type="application/x-www-form-urlencoded",
        expect_errors=True,
    )
    _secured(form)


def test_unknown_methods_are_405_with_allow(api):
    response = api("officer").request("/api/me", method="TRACE", expect_errors=True)
    assert response.status_int == 405
    assert "GET" in response.headers["Allow"]
    _secured(response)


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "}}}"}]}') == 3
    assert json_depth(b"1") == 0
    assert json_depth(b"[" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
    assert MAX_JSON_KEYS >= 100


def test_undeclared_methods_on_every_api_path_are_405(api):
    client = api("officer")
    document = client.get("/api/openapi.json").json
    for path, item in document["paths"].items():
        concrete = path.replace("{code}", "HH").replace("{submission_id}", "1")
        concrete = concrete.replace("{pdsa_id}", "1")
        for method in ("PUT", "DELETE", "PATCH"):
            if method.lower() in item:
                continue
            response = client.request(concrete, method=method, expect_errors=True)
            assert response.status_int == 405, (method, path, response.status)
            assert response.headers["Allow"]
            _secured(response)


def test_undeclared_query_parameters_are_400_and_empty_values_documented(api):
    client = api("officer")
    typo = client.get("/api/measures?dryrun=true", expect_errors=True)
    assert typo.status_int == 400
    assert typo.json["code"] == "bad_request"
    document = client.get("/api/openapi.json").json
    member = document["components"]["parameters"]["Member"]["schema"]
    assert member["minLength"] == 1  # so an empty ?member= is documented as invalid
    assert client.get("/api/measures?member=", expect_errors=True).status_int == 400
