"""The API against its OpenAPI document, both ways: schemathesis with every check (issue 14, 6).

Schemathesis (``--checks all``) generates schema-valid and schema-violating requests for every
operation and checks that none is a server error, that every status code, content type,
header and body is documented, that valid data is accepted and invalid data refused, and that
undeclared methods answer 405. It runs on SQLite and PostgreSQL through the ``world`` fixture,
with an officer's token, against the WSGI app in process.
"""

from __future__ import annotations

import gc
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy.orm import Session

from tests.cycles.world import World, issue_token

load_all_checks()
#: ``--checks all``, minus the two that need a stateful run (links between operations).
ALL_CHECKS = [
    check
    for check in CHECKS.get_all()
    if check.__name__ not in {"use_after_free", "ensure_resource_availability"}
]
EXAMPLES_PER_OPERATION = 25


#: Schema-valid requests may still be refused for what no schema can say: 422 for an unknown
#: measure or change idea, or values that fail the measure's validation (documented as such).
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
            }
        }
    }
)


@pytest.fixture
def api_schema(wf_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/openapi.json", wf_app, config=CONFIG)


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


# WebOb's test request spools bodies over 10 KB to a temporary file that it never closes.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_matches_the_document(
    api_schema: Any, wf_app: Any, world: World, db_session: Session, mode: GenerationMode
) -> None:
    token = issue_token(wf_app, db_session, world.users["officer"])
    db_session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    operations = _operations(api_schema)
    assert len(operations) >= 10
    failures: list[str] = []
    statuses: list[int] = []
    strategy = st.one_of([operation.as_strategy(generation_mode=mode) for operation in operations])

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        # The harness sends a valid token itself, so a case whose only fault is a missing or
        # odd Authorization header is not negative as sent.
        if (
            case.meta is not None
            and case.meta.is_negative_at(ParameterLocation.HEADER)
            and all(name.lower() == "authorization" for name in (case.headers or {}))
        ):
            return
        try:
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            case.validate_response(response, checks=ALL_CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as error:
            failures.append(f"{case.method} {case.formatted_path}: {str(error)[:400]}")

    run()
    gc.collect()  # close WebOb's spooled bodies here, where their warning is expected
    # The run reached the application, not only the token check.
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= status < 300 for status in statuses), Counter(statuses)
    assert sum(status != 401 for status in statuses) > len(statuses) / 2, Counter(statuses)
    assert not failures, "\n".join(dict.fromkeys(failures))
