"""The member results page's measure sections, kept per process for repeat visits.

Building a page's sections costs ~70 ms of CPU (a dozen SVG charts, the member's stored
payloads); serving the page again from this cache costs nothing of that, which is what keeps
the portal's p95 low when many members look at their results at once (``benchmarks/
bench_portal_load.py``). A succeeded run's rows never change, so the key only has to hold what
can change around them: the database and run (with its finishing stamp, as the run cache in
:mod:`.results` does), the reader, the peer group, the annotations (read fresh on every
request) and the names, codes and groups the page prints (read fresh by ``load_run``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cachetools import LRUCache

from qicollab.reporting.results import (
    load_annotations,
    load_member,
)
from qicollab.reporting.sections import MeasureSection, member_sections

if TYPE_CHECKING:
    from collections.abc import Hashable

    from sqlalchemy.orm import Session

    from qicollab.reporting.privacy import Audience
    from qicollab.reporting.results import PeerGroupView, RunData

#: Pages kept (each ~0.4 MB of SVG); the least recently served go first.
CACHED_PAGES = 64
_PAGES: LRUCache[Hashable, list[MeasureSection]] = LRUCache(maxsize=CACHED_PAGES)
_LOCK = threading.Lock()  # waitress serves from several threads; cachetools is not thread-safe


def results_page_sections(
    session: Session,
    run: RunData,
    member_id: int,
    audience: Audience,
    *,
    group: PeerGroupView | None = None,
) -> list[MeasureSection]:
    """The sections of a member's results page (built once, then served from memory)."""
    notes = load_annotations(session, run, member_id)
    labels = repr(
        (run.measures, sorted(run.members.items()), run.peer_groups, run.run.settings)
    )  # deterministic: frozen dataclasses, dicts in insertion order
    key = (
        str(session.get_bind().url),
        run.run.id,
        str(run.run.finished_at),
        member_id,
        group.id if group else None,
        audience,
        tuple(notes),
        labels,
    )
    with _LOCK:
        sections = _PAGES.get(key)
    if sections is not None:
        return sections
    data = load_member(session, run, member_id, annotations=notes)
    sections = member_sections(run, data, audience, group=group)
    with _LOCK:
        _PAGES[key] = sections
    return sections


def forget() -> None:
    """Drop every kept page: for a database rebuilt under the same URL with the same run ids
    and stamps (the test worlds are), where the key cannot tell the old rows from the new."""
    with _LOCK:
        _PAGES.clear()
