"""Portal load benchmark: 50 simulated members on the member pages (issue 5, section 12).

    .venv/bin/python benchmarks/bench_portal_load.py [--users 50] [--duration 60] [--threads 8]
                                                     [--small]

Builds the demo collaborative (40 hospitals, 36 months, with the history cycle computed; or,
with ``--small``, the two-member test collaborative) in a temporary SQLite file, serves it with
waitress on a free loopback port in a child process, and runs locust headless in another child
process: each simulated user signs in as one of the demo members' officers or viewers and walks
the member pages (submission portal, versions, completeness, learning cycles, measures, and the
member's results page) with 0.5-1.5 s of think time.

Prints the page p95 (target < 250 ms), the error count (target 0), per-page medians and p95s,
the server's CPU per page, and the results page median. The pages are CPU-bound Python, so
waitress threads beyond a few only queue for the GIL: ``--threads`` compares settings (the
default is what ``qicollab serve`` uses). Traffic goes to 127.0.0.1 only; the run stops by
itself after ``--duration`` seconds (the child processes are killed if they overstay).

Each simulated user signs in through the login form, as a person would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402 - after the path set-up above
import waitress  # noqa: E402

from qicollab import make_config  # noqa: E402
from qicollab.accounts.models import User  # noqa: E402
from qicollab.accounts.passwords import hash_password  # noqa: E402
from qicollab.cli.compute import demo_step  # noqa: E402
from qicollab.cli.context import LazyApp  # noqa: E402
from qicollab.cli.demo import publish_step  # noqa: E402
from qicollab.config import apply_defaults  # noqa: E402
from qicollab.db import (  # noqa: E402
    create_engine_from_settings,
    get_session_factory,
    session_scope,
    utcnow,
)
from qicollab.demo.generator import DEFAULT_SEED, generate  # noqa: E402
from qicollab.demo.loader import DEMO_PASSWORD, load  # noqa: E402
from qicollab.migrations import upgrade  # noqa: E402
from tests.cycles.world import PASSWORD, build_world  # noqa: E402

P95_TARGET_MS = 250.0
#: The thread count ``qicollab serve`` gives waitress (qicollab/cli/serve.py).
SERVE_THREADS = 8


# --- building the database ------------------------------------------------------------------------


def _settings(folder: Path) -> dict[str, Any]:
    """Everything in the temporary folder; no ini file is read."""
    return apply_defaults(
        {
            "sqlalchemy.url": f"sqlite:///{folder / 'portal.sqlite'}",
            "qicollab.storage": str(folder / "storage"),
            "qicollab.secret": "bench-portal-load",
            "mail.mailer": "console",
        }
    )


def build_demo(folder: Path) -> list[dict[str, Any]]:
    """The demo collaborative with its history cycle computed and published (members see only
    published results); returns the member accounts."""
    app = LazyApp(None)
    app.__dict__["settings"] = _settings(folder)  # no ini file: everything in the temp folder
    upgrade(app.engine)
    with session_scope(app.session_factory) as session:
        load(session, generate(DEFAULT_SEED), storage=folder / "storage")
    demo_step(app, DEFAULT_SEED)
    publish_step(app, DEFAULT_SEED)
    accounts = _member_accounts(app.session_factory, DEMO_PASSWORD)
    app.close()
    return accounts


def build_small(folder: Path) -> list[dict[str, Any]]:
    """The two-member workflow collaborative of the tests."""
    engine = create_engine_from_settings(_settings(folder))
    upgrade(engine)
    factory = get_session_factory(engine)
    with factory() as session:
        build_world(session, utcnow(), password_hash=hash_password(PASSWORD))
        session.commit()
    accounts = _member_accounts(factory, PASSWORD)
    engine.dispose()
    return accounts


def _member_accounts(factory: Any, password: str) -> list[dict[str, Any]]:
    """The officers and viewers the simulated users sign in as."""
    with factory() as session:
        users = session.scalars(
            sa.select(User).where(User.member_id.is_not(None)).order_by(User.id)
        ).all()
        return [
            {"id": u.id, "email": u.email, "password": password, "member_id": u.member_id}
            for u in users
        ]


# --- the server (child process) ------------------------------------------------------------------


def serve(folder: Path, port: int, threads: int) -> None:
    """Serve the portal on 127.0.0.1:port; print one JSON line when ready."""
    settings = _settings(folder)
    config = make_config(settings)
    app = config.make_wsgi_app()

    # Queue-depth warnings are expected at the peak; the benchmark reports latency instead.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = waitress.create_server(
        app, host="127.0.0.1", port=port, threads=threads, ident="qicollab"
    )
    print(json.dumps({"ready": True}), flush=True)
    server.run()


# --- the simulated users (a locustfile written next to the database) ------------------------------

LOCUSTFILE = textwrap.dedent(
    '''
    """Simulated member users for bench_portal_load.py (generated; not part of the package)."""

    import json
    import os
    import random
    import re
    import time

    from locust import HttpUser, between, events, task

    ACCOUNTS = json.loads(os.environ["QICOLLAB_BENCH_ACCOUNTS"])
    SAMPLES = os.environ["QICOLLAB_BENCH_SAMPLES"]
    samples = []


    @events.request.add_listener
    def collect(request_type, name, response_time, response_length, exception=None, **kw):
        samples.append([name, response_time, exception is not None, time.time()])


    @events.quitting.add_listener
    def write(environment, **kw):
        with open(SAMPLES, "w") as handle:
            json.dump(samples, handle)


    class Member(HttpUser):
        wait_time = between(0.5, 1.5)

        def on_start(self):
            account = random.choice(ACCOUNTS)
            self.member = account["member_id"]
            page = self.client.get("/login", name="(login)")
            found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            self.client.post(
                "/login",
                {
                    "email": account["email"],
                    "password": account["password"],
                    "csrf_token": found.group(1) if found else "",
                },
                name="(login)",
            )

        def page(self, path, name):
            with self.client.get(path, name=name, catch_response=True) as response:
                if response.status_code != 200 or "<html" not in response.text:
                    response.failure(f"status {response.status_code}")

        @task(3)
        def completeness(self):
            self.page(f"/members/{self.member}/completeness", "/members/[id]/completeness")

        @task(3)
        def submit(self):
            self.page(f"/members/{self.member}/submit", "/members/[id]/submit")

        @task(2)
        def versions(self):
            self.page(f"/members/{self.member}/submissions", "/members/[id]/submissions")

        @task(1)
        def cycles(self):
            self.page("/cycles", "/cycles")

        @task(1)
        def measures(self):
            self.page("/catalogue/measures", "/catalogue/measures")

        @task(2)
        def results(self):
            self.page(f"/members/{self.member}/results", "/members/[id]/results")
    '''
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    msg = f"the portal at {url} did not become healthy in {timeout:.0f} s"
    raise RuntimeError(msg)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def run(args: argparse.Namespace) -> int:
    """Build, serve, load, report; returns the exit status (0 when the targets are met)."""
    folder = Path(tempfile.mkdtemp(prefix="qicollab-load-"))
    server = None
    try:
        print(
            f"machine load before: {os.getloadavg()[0]:.2f} (2 cores are shared with anything else)"
        )
        started = time.perf_counter()
        accounts = build_small(folder) if args.small else build_demo(folder)
        print(
            f"built the {'small' if args.small else 'demo'} collaborative in "
            f"{time.perf_counter() - started:.1f} s ({len(accounts)} member accounts)"
        )
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(folder),
                "--port",
                str(port),
                "--threads",
                str(args.threads),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=folder,
        )
        server.stdout.readline()  # the child's "ready" line
        _wait_healthy(url, 60)
        locustfile = folder / "locustfile.py"
        locustfile.write_text(LOCUSTFILE)
        samples_path = folder / "samples.json"
        env = {
            **os.environ,
            "QICOLLAB_BENCH_ACCOUNTS": json.dumps(accounts),
            "QICOLLAB_BENCH_SAMPLES": str(samples_path),
        }
        locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
        print(
            f"locust: {args.users} users, {args.warmup} s warm-up (spawn and sign-in) + "
            f"{args.duration} s measured, think time 0.5-1.5 s, {url}, "
            f"waitress threads {args.threads}"
        )
        command = [locust, "-f", str(locustfile), "--headless", "--host", url]
        command += ["-u", str(args.users), "-r", str(max(1, args.users // 5))]
        command += ["-t", f"{args.warmup + args.duration}s", "--stop-timeout", "5"]
        command += ["--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        log = folder / "locust.log"
        started = time.time()
        # The server's CPU seconds over the measured window: a figure the machine's other
        # load does not inflate (unlike latency), so runs on a busy machine stay comparable.
        cpu: dict[str, float] = {}
        marks = [
            threading.Timer(args.warmup, lambda: cpu.update(start=_cpu_seconds(server.pid))),
            threading.Timer(
                args.warmup + args.duration, lambda: cpu.update(end=_cpu_seconds(server.pid))
            ),
        ]
        for mark in marks:
            mark.start()
        with log.open("w") as output:
            finished = subprocess.run(
                command,
                env=env,
                cwd=folder,
                check=False,
                timeout=args.warmup + args.duration + 90,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        if finished.returncode != 0 or not samples_path.exists():
            print(log.read_text()[-4000:])
            print(f"locust failed (exit {finished.returncode})")
            return 2
        for mark in marks:
            mark.cancel()
        print(f"machine load after: {os.getloadavg()[0]:.2f}")
        return report(
            json.loads(samples_path.read_text()),
            since=started + args.warmup,
            until=started + args.warmup + args.duration,
            server_cpu=cpu.get("end", 0.0) - cpu.get("start", 0.0) if len(cpu) == 2 else None,
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    samples: list[list[Any]],
    *,
    since: float,
    until: float,
    server_cpu: float | None,
) -> int:
    """Print the figures; 0 when page p95 < 250 ms and nothing failed.

    Errors count over the whole run, sign-ins included; timings only after the warm-up.
    """
    errors = sum(1 for s in samples if s[2])
    pages = [s for s in samples if not s[0].startswith("(") and s[3] >= since]
    window = [s for s in pages if s[3] <= until]
    times = [float(s[1]) for s in pages if not s[2]]
    p95 = _percentile(times, 0.95)
    print(
        f"\nrequests: {len(samples)} ({len(pages)} pages timed after the warm-up), errors: {errors}"
    )
    print(f"{'page':<32} {'n':>6} {'median ms':>10} {'p95 ms':>8}")
    for name in sorted({s[0] for s in pages}):
        own = [float(s[1]) for s in pages if s[0] == name and not s[2]]
        print(
            f"{name:<32} {len(own):>6} {statistics.median(own) if own else float('nan'):>10.1f} "
            f"{_percentile(own, 0.95):>8.1f}"
        )
    print(
        f"\npage p95: {p95:.1f} ms (target < {P95_TARGET_MS:.0f} ms; ratio "
        f"{p95 / P95_TARGET_MS:.2f}) · errors: {errors} (target 0)"
    )
    if server_cpu is not None and window:
        print(
            f"server CPU: {server_cpu:.1f} s over {len(window)} pages = "
            f"{1000 * server_cpu / len(window):.1f} ms per page "
            f"({len(window) / max(until - since, 1):.1f} pages/s)"
        )
    result_times = [float(s[1]) for s in pages if s[0] == "/members/[id]/results" and not s[2]]
    if result_times:
        print(f"member results page median: {statistics.median(result_times):.1f} ms")
    return 0 if p95 < P95_TARGET_MS and errors == 0 else 1


def main() -> int:
    """Parse the command line and run (or serve, in the child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50, help="simulated users (default 50)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument(
        "--warmup", type=int, default=15, help="seconds of spawning and sign-in not timed"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=SERVE_THREADS,
        help=f"waitress threads (default {SERVE_THREADS}, as 'qicollab serve' uses)",
    )
    parser.add_argument("--small", action="store_true", help="the 2-member test collaborative")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.threads)
        return 0
    if not 1 <= args.threads <= 64:
        parser.error("--threads: 1 to 64")
    if not 1 <= args.users <= 500 or not 5 <= args.duration <= 600 or not 0 <= args.warmup <= 120:
        parser.error("keep it bounded: 1-500 users, 5-600 seconds, warm-up up to 120 s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
