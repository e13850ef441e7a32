"""Progress bars (tqdm) for the CLI: fed directly by the job service, or by polling a job row.

In-process work passes :class:`JobBar` as the job service's listener, so the bar moves as soon as
progress is committed; :func:`follow_job` polls the row of a job that runs elsewhere (a worker).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from qicollab.jobs.services import JobService, JobState


class JobBar:
    """A tqdm bar that shows a job's done/total and its message."""

    def __init__(self, *, description: str = "", file: TextIO | None = None) -> None:
        self.bar: tqdm[Any] = tqdm(
            total=0,
            desc=description,
            file=file or sys.stderr,
            dynamic_ncols=True,
            leave=True,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}",
        )

    def __call__(self, state: JobState) -> None:
        """Move the bar to the job's state."""
        if state.total and self.bar.total != state.total:
            self.bar.total = state.total
        self.bar.n = state.done
        self.bar.set_postfix_str(state.message[:60], refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """Leave the final line on screen."""
        self.bar.close()

    def __enter__(self) -> JobBar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def follow_job(
    jobs: JobService,
    job_id: int,
    *,
    poll_seconds: float = 0.5,
    timeout: float | None = None,
    file: TextIO | None = None,
    description: str = "",
) -> JobState:
    """Poll a job row, drawing a bar, until the job finishes (or ``timeout`` s pass)."""
    started = time.monotonic()
    with JobBar(description=description or f"job {job_id}", file=file) as bar:
        while True:
            state = jobs.get(job_id)
            bar(state)
            if state.finished:
                return state
            if timeout is not None and time.monotonic() - started > timeout:
                return state
            time.sleep(poll_seconds)
