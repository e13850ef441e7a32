"""Wide uploads are refused while they are read: bounded memory and time (issue 14, item 1).

Each case runs in a fresh Python process so that its peak resident memory (``ru_maxrss``) is
its own: the process builds the request body, notes its peak, hands the body to the code the
server runs first (the CSV reader, the JSON guard), and reports the growth of the peak and the
time until the refusal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_GROWTH_MIB = 300
MAX_SECONDS = 5.0

_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    from qicollab.submissions.errors import ParseError
    from qicollab.submissions.parsing import parse_upload
    from qicollab.guards import RefusedRequestError, check_json

    case = sys.argv[1]
    if case == "csv_1m_header":
        body = b"c," * 999_999 + b"c\\n1\\n"
    elif case == "csv_10m_header":
        body = b"c," * 9_999_999 + b"c\\n1\\n"
    elif case == "csv_wide_second_row":
        body = b"period,numerator,denominator\\n" + b"1," * 4_000_000 + b"1\\n"
    elif case == "csv_quoted_wide_header":
        body = b'"a,b",' * 1_000_000 + b"c\\n1\\n"
    elif case == "json_40k_keys":
        row = {f"covariate_{i}": i for i in range(40_000)}
        body = json.dumps({"measure": "SURG", "rows": [row]}).encode()
    elif case == "json_deep":
        body = b"[" * 5_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        if case.startswith("csv"):
            parse_upload(body, "wide.csv")
        else:
            check_json(body)
        refused = ""
    except (ParseError, RefusedRequestError) as error:
        refused = type(error).__name__
    seconds = time.perf_counter() - started
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"refused": refused, "seconds": seconds, "growth_mib": growth,
                      "body_mib": len(body) / 2**20}))
    """
)


@pytest.mark.parametrize(
    "case",
    [
        "csv_1m_header",
        "csv_10m_header",
        "csv_wide_second_row",
        "csv_quoted_wide_header",
        "json_40k_keys",
        "json_deep",
    ],
)
def test_wide_and_deep_bodies_are_refused_in_bounded_memory_and_time(case):
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, case],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["refused"], figures
    assert figures["growth_mib"] <= MAX_GROWTH_MIB, figures
    assert figures["seconds"] <= MAX_SECONDS, figures
