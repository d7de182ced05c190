"""The machinery of the end-to-end tests: servers, the fault scheduler, the checker.

Everything here runs on 127.0.0.1, is bounded in count and time, and stops by
itself: a server subprocess is terminated (then killed) when its owner stops it,
threads are daemons joined with deadlines, and every network call has a timeout.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

import auditkit

__all__ = [
    "API_KEY",
    "FaultScheduler",
    "FaultStep",
    "ServerProcess",
    "SoakResult",
    "SoakSettings",
    "UvicornThread",
    "check_delivery",
    "control",
    "fetch_stored_events",
    "free_port",
    "load_plan",
    "plan_faults",
    "run_script",
    "run_soak",
    "start_script",
    "wait_until",
]

#: The key the soak's recorders send; without ``--api-key`` the fake takes any key.
API_KEY = "e2e-soak-key"
_REPO_ROOT = Path(__file__).resolve().parents[2]
# The scripts run as ``python -m e2e.scripts.NAME`` from here.
_TESTS_DIR = Path(__file__).resolve().parents[1]
# How long a server subprocess may take to print its URL and answer /healthz.
_START_TIMEOUT = 30.0
# How long a control call may take; a server that is down fails it fast.
_CONTROL_TIMEOUT = 5.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass.

    Only for conditions in another process, which can't signal this one; within a
    process the tests wait on events.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval)


class ServerProcess:
    """``python -m fake_server`` in a subprocess, on a port that stays the same.

    With ``db`` the events live in a SQLite file, so they survive :meth:`restart`;
    the port is fixed at construction so that a recorder's endpoint stays valid
    across restarts.

    Args:
        db: The SQLite file, or None for an in-memory store.
        log_dir: Where the server's stderr goes (shown when a test fails).
        api_keys: ``--api-key`` values, ``KEY`` or ``KEY=TENANT``.
        port: The port; a free one by default.
    """

    def __init__(
        self,
        *,
        db: Path | None,
        log_dir: Path,
        api_keys: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._db = db
        self._log_dir = log_dir
        self._api_keys = tuple(api_keys)
        self._proc: subprocess.Popen[str] | None = None
        self._starts = 0

    @property
    def pid(self) -> int:
        """The running server's process id."""
        assert self._proc is not None, "the server is not running"
        return self._proc.pid

    def start(self) -> None:
        """Start the server and return once it answers ``/healthz``.

        Blocks up to 30 seconds. Raises RuntimeError if it doesn't come up.
        """
        self._starts += 1
        log = open(self._log_dir / f"server-{self._starts}.log", "w")
        command = [sys.executable, "-m", "fake_server", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        if self._db is not None:
            command += ["--db", str(self._db)]
        for key in self._api_keys:
            command += ["--api-key", key]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=_REPO_ROOT,
            env=env,
        )
        log.close()
        self._check_url_line()
        if not wait_until(self._is_healthy, timeout=_START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"The fake server did not answer on {self.url}.")

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop the server gracefully (SIGTERM), killing it after ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, stay down for ``down_for`` seconds, start it again."""
        self.stop()
        threading.Event().wait(down_for)
        self.start()

    def rss_bytes(self) -> int:
        """The server's resident memory, from ``/proc`` (Linux only)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS not found in /proc status.")

    def log_text(self) -> str:
        """Everything the server processes wrote to stderr, for failure messages."""
        parts = sorted(self._log_dir.glob("server-*.log"))
        return "\n".join(path.read_text(errors="replace") for path in parts)

    def _check_url_line(self) -> None:
        # The first stdout line is the URL; read it on a thread so that a server that
        # never prints can't hang the test, and keep draining so it never blocks.
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        first: list[str] = []
        got_line = threading.Event()

        def drain() -> None:
            for line in stdout:
                if not first:
                    first.append(line.strip())
                    got_line.set()
            got_line.set()

        threading.Thread(target=drain, daemon=True, name="fake-server-stdout").start()
        if not got_line.wait(_START_TIMEOUT) or not first:
            self.stop()
            raise RuntimeError("The fake server printed no URL.\n" + self.log_text())
        # The line is "fake_server listening on URL": the URL is its last word.
        printed = first[0].rsplit(None, 1)[-1].rstrip("/") if first[0] else ""
        if printed != self.url:
            self.stop()
            raise RuntimeError(f"The fake server printed {first[0]!r}, not {self.url}.")

    def _is_healthy(self) -> bool:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("The fake server exited.\n" + self.log_text())
        try:
            return httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def control(
    url: str, method: str, path: str, body: Any = None, *, timeout: float | None = None
) -> httpx.Response:
    """Call the fake's control API (``/_fake/...``), which needs no key."""
    return httpx.request(
        method,
        url + path,
        json=body,
        timeout=_CONTROL_TIMEOUT if timeout is None else timeout,
    )


def fetch_stored_events(
    url: str, *, api_key: str = API_KEY, page_size: int = 1000, **filters: str
) -> list[dict[str, Any]]:
    """Every event the server stores (matching ``filters``), following the cursor.

    Duplicates are kept, so that a caller can count them.
    """
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": page_size, **filters}
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        while True:
            response = client.get("/v1/events", params=params)
            response.raise_for_status()
            page = response.json()
            events.extend(page["events"])
            if not page.get("next_cursor"):
                return events
            params["cursor"] = page["next_cursor"]


def _script_command(name: str, args: Sequence[object]) -> list[str]:
    return [sys.executable, "-m", f"e2e.scripts.{name}", *map(str, args)]


def run_script(
    name: str, *args: object, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``tests/e2e/scripts/NAME.py`` to the end; its output is captured.

    Blocks until it exits; raises ``subprocess.TimeoutExpired`` after ``timeout``
    seconds (the child is killed).
    """
    return subprocess.run(
        _script_command(name, args),
        cwd=_TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        check=False,
    )


def start_script(name: str, *args: object) -> subprocess.Popen[str]:
    """Start ``tests/e2e/scripts/NAME.py``; the caller waits for it and kills it."""
    return subprocess.Popen(
        _script_command(name, args),
        cwd=_TESTS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SoakSettings:
    """How big the soak is, and the seed of its fault schedule."""

    seed: int
    threads: int
    per_thread: int
    #: Seconds over which the producers spread their records.
    duration: float
    #: Mean seconds between two injected faults.
    fault_gap: float
    #: Whether the server is restarted once, mid-run.
    restart: bool = True
    #: How long close() may take to deliver what is left after the run.
    close_timeout: float = 60.0

    @classmethod
    def ci(cls, seed: int) -> SoakSettings:
        """The variant CI runs: 4 threads x 5,000 events, well under a minute."""
        return cls(seed=seed, threads=4, per_thread=5_000, duration=8.0, fault_gap=0.3)

    @classmethod
    def long(cls, seed: int) -> SoakSettings:
        """The long variant: 8 threads x 25,000 events over about a minute."""
        return cls(
            seed=seed,
            threads=8,
            per_thread=25_000,
            duration=60.0,
            fault_gap=0.25,
            close_timeout=180.0,
        )

    @property
    def total(self) -> int:
        """How many events the producers record."""
        return self.threads * self.per_thread

    def describe(self) -> str:
        """One line for the test output."""
        return (
            f"seed={self.seed} threads={self.threads} per_thread={self.per_thread} "
            f"duration={self.duration}s restart={self.restart}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class FaultStep:
    """At ``at`` seconds into the run, inject ``fault``, or restart the server
    (down for ``down_for`` seconds) when ``fault`` is None."""

    at: float
    fault: dict[str, Any] | None = None
    down_for: float = 0.0  # a restart when fault is None


def plan_faults(settings: SoakSettings) -> list[FaultStep]:
    """The fault schedule: a pure function of the settings, so a seed replays it."""
    rng = random.Random(settings.seed)
    # One fault of every kind first, at random moments before the restart (which
    # comes after 30% of the run), so that no seed skips a kind (a bug that shows
    # only after a reset must meet a reset); then a random stream of faults.
    steps = [
        FaultStep(
            rng.uniform(0.0, settings.duration * 0.3), fault=_random_fault(rng, kind)
        )
        for kind in _FAULT_KINDS
    ]
    at = rng.uniform(0.0, settings.fault_gap)
    while at < settings.duration:
        steps.append(FaultStep(at, fault=_random_fault(rng)))
        at += rng.expovariate(1.0 / settings.fault_gap)
    if settings.restart:
        restart_at = settings.duration * rng.uniform(0.3, 0.6)
        steps.append(FaultStep(restart_at, down_for=rng.uniform(0.3, 1.5)))
    steps.sort(key=lambda step: step.at)
    return steps


def load_plan(source: str, settings: SoakSettings) -> list[FaultStep]:
    """Read a fault schedule written outside this project.

    ``source`` is a JSON document, or the path of a file holding one: a list of
    steps, each ``{"at": SECONDS, "fault": {...}}`` with the body of
    ``POST /_fake/faults``, or ``{"at": SECONDS, "restart": DOWN_FOR}`` to restart
    the server and keep it down for ``DOWN_FOR`` seconds. A schedule without a
    restart step gets the seeded restart of ``settings`` (when it asks for one),
    so that every soak still meets a restart.

    Raises:
        ValueError: The schedule is not of that shape.
    """
    text = source if source.lstrip().startswith("[") else Path(source).read_text()
    raw = json.loads(text)
    if not isinstance(raw, list):
        raise ValueError("A fault schedule is a JSON list of steps.")
    steps = [_parse_step(index, item) for index, item in enumerate(raw)]
    if settings.restart and all(step.fault is not None for step in steps):
        steps += [s for s in plan_faults(settings) if s.fault is None]
    steps.sort(key=lambda step: step.at)
    return steps


def _parse_step(index: int, item: Any) -> FaultStep:
    where = f"Step {index} of the fault schedule"
    if not isinstance(item, dict) or set(item) not in (
        {"at", "fault"},
        {"at", "restart"},
    ):
        raise ValueError(f"{where} must have 'at' and one of 'fault', 'restart'.")
    at = item["at"]
    if isinstance(at, bool) or not isinstance(at, int | float) or at < 0:
        raise ValueError(f"{where} has a bad 'at': {at!r}.")
    if "restart" in item:
        down_for = item["restart"]
        if isinstance(down_for, bool) or not isinstance(down_for, int | float):
            raise ValueError(f"{where} has a bad 'restart': {down_for!r}.")
        return FaultStep(float(at), down_for=max(float(down_for), 0.0))
    fault = item["fault"]
    if not isinstance(fault, dict) or "times" not in fault:
        raise ValueError(f"{where} needs a fault object with 'times': {fault!r}.")
    return FaultStep(float(at), fault=fault)


_FAULT_KINDS = ("5xx", "429", "delay", "before_body", "after_body")


def _random_fault(rng: random.Random, kind: str | None = None) -> dict[str, Any]:
    if kind is None:
        kind = rng.choice((*_FAULT_KINDS, "5xx"))
    times = rng.randint(1, 4)
    if kind == "5xx":
        fault: dict[str, Any] = {"status": rng.choice((500, 502, 503)), "times": times}
        if fault["status"] == 503 and rng.random() < 0.5:
            fault["retry_after"] = 0
    elif kind == "429":
        fault = {"status": 429, "times": rng.randint(1, 2)}
        fault["retry_after"] = rng.choice((0, 0, 1))
    elif kind == "delay":
        fault = {"delay": round(rng.uniform(0.02, 0.4), 3), "times": times}
    else:
        fault = {"drop": kind, "times": times}
    if kind != "delay" and rng.random() < 0.2:
        fault["delay"] = round(rng.uniform(0.01, 0.2), 3)
    return fault


class FaultScheduler(threading.Thread):
    """Injects the planned faults through the control API, and restarts the server.

    A control call that fails (the server is down) skips that fault. The thread
    stops when the plan runs out or :meth:`stop` is called; a restart in progress
    always completes, so the server is up when :meth:`join` returns.
    """

    def __init__(self, server: ServerProcess, plan: Sequence[FaultStep]) -> None:
        super().__init__(daemon=True, name="fault-scheduler")
        self._server = server
        self._plan = plan
        self._halt = threading.Event()
        #: Faults the server accepted, and restarts done; read after join().
        self.injected: list[dict[str, Any]] = []
        self.restarts = 0
        #: Faults the control API refused, with its status; read after join().
        self.refused: list[tuple[dict[str, Any], int]] = []
        self.error: BaseException | None = None

    def stop(self) -> None:
        """Ask the thread to stop at its next step."""
        self._halt.set()

    def run(self) -> None:
        started = time.monotonic()
        try:
            for step in self._plan:
                wait = step.at - (time.monotonic() - started)
                if self._halt.wait(max(wait, 0.0)):
                    return
                self._run_step(step)
        except BaseException as exc:  # reported by the soak, never lost
            self.error = exc

    def _run_step(self, step: FaultStep) -> None:
        if step.fault is None:
            self._server.restart(step.down_for)
            self.restarts += 1
            return
        try:
            response = control(self._server.url, "POST", "/_fake/faults", step.fault)
        except httpx.HTTPError:
            return
        if response.status_code < 300:
            self.injected.append(step.fault)
        else:
            # A fault the server refuses is a broken schedule: the soak would
            # otherwise pass without meeting it.
            self.refused.append((step.fault, response.status_code))


@dataclasses.dataclass(slots=True)
class SoakResult:
    """What a soak run did and what the checker found; empty problems mean a pass."""

    settings: SoakSettings
    enqueued: list[str]
    stored: list[dict[str, Any]]
    stats: auditkit.Stats
    outcomes: collections.Counter[str]
    closed_in_time: bool
    faults: list[dict[str, Any]]
    restarts: int
    problems: list[str]
    #: How the server answered since its last restart, by status, from its journal.
    answers: dict[str, int] = dataclasses.field(default_factory=dict)

    def report(self) -> str:
        """The failure message: the seed first, then every problem."""
        lines = [
            f"soak failed; replay with --soak-seed={self.settings.seed}",
            f"  settings: {self.settings.describe()}",
            f"  outcomes: {dict(self.outcomes)}",
            f"  stats: {self.stats}",
            f"  faults injected: {len(self.faults)}, restarts: {self.restarts}",
            f"  answers since the last restart: {self.answers}",
        ]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def check_delivery(
    enqueued: Iterable[str],
    stored_ids: Sequence[str],
    stats: auditkit.Stats,
    *,
    closed_in_time: bool = True,
) -> list[str]:
    """Compare what the SDK accepted with what the server holds, and the stats.

    Returns the problems found; an empty list means nothing was lost, nothing was
    stored twice or out of thin air, and the recorder's counters add up.
    """
    problems: list[str] = []
    expected = list(enqueued)
    expected_set = set(expected)
    stored_set = set(stored_ids)
    if len(expected_set) != len(expected):
        problems.append(f"{len(expected) - len(expected_set)} enqueued ids repeat")
    missing = expected_set - stored_set
    if missing:
        problems.append(
            f"{len(missing)} enqueued events are missing on the server, e.g. "
            f"{sorted(missing)[:3]}"
        )
    unexpected = stored_set - expected_set
    if unexpected:
        problems.append(
            f"{len(unexpected)} stored events were never enqueued, e.g. "
            f"{sorted(unexpected)[:3]}"
        )
    repeated = [i for i, n in collections.Counter(stored_ids).items() if n > 1]
    if repeated:
        problems.append(f"{len(repeated)} events are stored more than once")
    problems += _check_stats(stats, len(expected), closed_in_time)
    return problems


def _check_stats(
    stats: auditkit.Stats, enqueued: int, closed_in_time: bool
) -> list[str]:
    problems: list[str] = []
    settled = (
        stats.delivered + stats.failed + stats.evicted + stats.depth + stats.in_flight
    )
    if stats.enqueued != settled:
        problems.append(
            f"stats don't add up: enqueued {stats.enqueued} != delivered + failed + "
            f"evicted + depth + in_flight = {settled}"
        )
    if stats.enqueued != enqueued:
        problems.append(
            f"stats.enqueued is {stats.enqueued}, but {enqueued} records returned "
            "ENQUEUED"
        )
    for name in ("failed", "dropped", "evicted", "depth", "in_flight"):
        if getattr(stats, name):
            problems.append(f"stats.{name} is {getattr(stats, name)}, expected 0")
    if stats.delivered != enqueued:
        problems.append(f"stats.delivered is {stats.delivered}, expected {enqueued}")
    if not closed_in_time:
        problems.append("close() did not finish delivering within its timeout")
    return problems


RecorderFactory = Callable[[str], Any]


def run_soak(
    settings: SoakSettings,
    server: ServerProcess,
    make_recorder: RecorderFactory,
    *,
    plan: Sequence[FaultStep] | None = None,
) -> SoakResult:
    """Record from several threads while the scheduler injects faults, then check.

    ``make_recorder(endpoint)`` builds the recorder under test; ``plan`` replaces
    the seeded fault schedule. Blocks until the
    producers are done and ``close()`` returned (bounded by the settings).
    """
    recorder = make_recorder(server.url)
    scheduler = FaultScheduler(server, plan_faults(settings) if plan is None else plan)
    producers = [_Producer(recorder, n, settings) for n in range(settings.threads)]
    try:
        scheduler.start()
        for producer in producers:
            producer.start()
        _join_all(producers, timeout=settings.duration * 4 + 60.0)
    finally:
        scheduler.stop()
        scheduler.join(timeout=_START_TIMEOUT * 2)
        closed = recorder.close(timeout=settings.close_timeout)
    if scheduler.error is not None:
        raise RuntimeError("The fault scheduler failed.") from scheduler.error

    return _collect(settings, server, recorder, producers, scheduler, closed)


def _collect(
    settings: SoakSettings,
    server: ServerProcess,
    recorder: Any,
    producers: Sequence[_Producer],
    scheduler: FaultScheduler,
    closed: bool,
) -> SoakResult:
    enqueued = [event_id for p in producers for event_id in p.enqueued]
    outcomes: collections.Counter[str] = collections.Counter()
    for producer in producers:
        outcomes.update(producer.outcomes)
    stats = recorder.stats()
    stored = fetch_stored_events(server.url)
    stored_ids = [event["id"] for event in stored]
    problems = check_delivery(enqueued, stored_ids, stats, closed_in_time=closed)
    problems += _check_content(stored, producers)
    server_count = control(server.url, "GET", "/_fake/stats").json()["events"]
    if server_count != len(stored):
        problems.append(
            f"the server counts {server_count} events, the query listed {len(stored)}"
        )
    for fault, status in scheduler.refused:
        problems.append(f"the server refused the fault {fault} with {status}")
    if outcomes["enqueued"] != settings.total:
        problems.append(f"not every record was ENQUEUED: {dict(outcomes)}")
    for producer in producers:
        if producer.error is not None:
            problems.append(f"a producer raised {producer.error!r}")
    return SoakResult(
        settings=settings,
        enqueued=enqueued,
        stored=stored,
        stats=stats,
        outcomes=outcomes,
        closed_in_time=closed,
        faults=scheduler.injected,
        restarts=scheduler.restarts,
        problems=problems,
        answers=_journal_answers(server.url),
    )


def _check_content(
    stored: Sequence[dict[str, Any]], producers: Sequence[_Producer]
) -> list[str]:
    """Each stored event carries what its producer recorded under its id."""
    sent = {event_id: (p.number, seq) for p in producers for event_id, seq in p.sent}
    altered = [
        event["id"]
        for event in stored
        if event["id"] in sent
        and (event["metadata"].get("thread"), event["metadata"].get("seq"))
        != sent[event["id"]]
    ]
    if altered:
        return [f"{len(altered)} stored events differ from what was recorded"]
    return []


def _journal_answers(url: str) -> dict[str, int]:
    journal = control(url, "GET", "/_fake/requests").json()["requests"]
    return dict(collections.Counter(str(entry["status"]) for entry in journal))


class _Producer(threading.Thread):
    """Records ``per_thread`` events, spread over the soak's duration."""

    _CHUNK = 50

    def __init__(self, recorder: Any, number: int, settings: SoakSettings) -> None:
        super().__init__(daemon=True, name=f"soak-producer-{number}")
        self._recorder = recorder
        self.number = number
        self._count = settings.per_thread
        chunks = max(settings.per_thread // self._CHUNK, 1)
        self._pause = settings.duration / chunks
        # Written by this thread only; read after join().
        self.enqueued: list[str] = []
        self.sent: list[tuple[str, int]] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.error: BaseException | None = None

    def run(self) -> None:
        # Pacing, not synchronisation: the records are spread out so that they
        # overlap the faults and the restart instead of all landing in the first
        # few milliseconds.
        pace = threading.Event()
        try:
            for seq in range(self._count):
                if seq and seq % self._CHUNK == 0:
                    pace.wait(self._pause)
                self._record_one(seq)
        except BaseException as exc:
            self.error = exc

    def _record_one(self, seq: int) -> None:
        event = auditkit.Event(
            action="soak.record",
            actor=auditkit.Actor("thread", str(self.number)),
            target=auditkit.Target("item", str(seq)),
            result=auditkit.Result("success"),
            metadata={"thread": self.number, "seq": seq},
        )
        event.id = auditkit.new_event_id()
        outcome = self._recorder.record(event, timeout=30.0)
        self.outcomes[outcome.value] += 1
        if outcome is auditkit.Outcome.ENQUEUED:
            self.enqueued.append(event.id)
            self.sent.append((event.id, seq))


def _join_all(threads: Iterable[threading.Thread], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            raise RuntimeError(f"{thread.name} did not finish within {timeout} s.")


class UvicornThread:
    """A real uvicorn serving ``app`` on 127.0.0.1, in a daemon thread.

    Uvicorn's own proxy-header handling is off, so that what the app sees as the
    client address is the socket's peer unless the app's middleware decides
    otherwise.
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            proxy_headers=False,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, daemon=True, name="uvicorn-e2e"
        )

    def __enter__(self) -> UvicornThread:
        self._thread.start()
        if not wait_until(lambda: self._server.started, timeout=_START_TIMEOUT):
            self._server.should_exit = True
            raise RuntimeError("uvicorn did not start.")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15.0)
