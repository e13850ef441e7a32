"""The de-identification screen on the planted and clean corpora: refusal rates and speed.

    .venv/bin/python benchmarks/bench_identifiers.py

Prints, per Safe Harbor category and per channel, how many planted identifiers (each also in
its full-width, Arabic-Indic and zero-width disguises) are refused, how many clean comments
and opaque case keys are refused, and the median time per screened text. Targets (issue 14,
item 2): >= 98 % of planted identifiers refused, <= 1 % of the clean corpus refused.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qicollab.submissions.identifiers import screen_key, screen_text
from tests.privacy import corpus


def main() -> int:
    screen_text("warm the name lists")
    planted = corpus.planted_with_disguises()
    refused_by: Counter[str] = Counter()
    total_by: Counter[str] = Counter()
    timings = []
    for category, channel, text in planted:
        started = time.perf_counter()
        refused = bool(screen_text(text))
        timings.append(time.perf_counter() - started)
        for key in (f"category {category}", f"channel {channel}"):
            total_by[key] += 1
            refused_by[key] += refused
    for key in sorted(total_by):
        print(f"{key:<40} {refused_by[key]:>5}/{total_by[key]:<5} refused")
    refused = sum(refused_by[k] for k in total_by if k.startswith("category"))
    keys_refused = sum(bool(screen_key(key)) for key in corpus.PLANTED_KEYS)
    clean = sum(bool(screen_text(text)) for text in corpus.CLEAN_COMMENTS)
    clean_keys = corpus.clean_keys(10_000)
    clean_keys_refused = sum(bool(screen_key(key)) for key in clean_keys)
    clean_total = len(corpus.CLEAN_COMMENTS) + len(clean_keys)
    planted_rate = (refused + keys_refused) / (len(planted) + len(corpus.PLANTED_KEYS))
    clean_rate = (clean + clean_keys_refused) / clean_total
    print(f"planted identifiers x channels x disguises: {refused}/{len(planted)} refused")
    print(f"planted case keys: {keys_refused}/{len(corpus.PLANTED_KEYS)} refused")
    print(f"planted overall: {planted_rate:.2%} refused (target >= 98%)")
    print(f"clean comments: {clean}/{len(corpus.CLEAN_COMMENTS)} refused")
    print(f"clean case keys (UUID, random codes): {clean_keys_refused}/{len(clean_keys)} refused")
    print(f"clean overall: {clean_rate:.2%} refused (target <= 1%)")
    print(f"median time per text: {statistics.median(timings) * 1e6:.0f} us")
    return 0 if planted_rate >= 0.98 and clean_rate <= 0.01 else 1


if __name__ == "__main__":
    raise SystemExit(main())
