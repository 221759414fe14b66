"""Processes that outlive the command that started them: each in its own session, logging to
STATE/logs/<name>.log, recorded in STATE/run/<name>.json (pid, command line, URLs); started with a
health check, stopped with SIGTERM and, after a grace period, SIGKILL to the whole process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import TypeAdapter, ValidationError

from teeplane.dev.components import Component
from teeplane.dev.errors import COMPONENT_FAILED, DevError
from teeplane.dev.hack import tail
from teeplane.dev.layout import Layout
from teeplane.dev.materials import write
from teeplane.tls import Verify, trusting

READY_TIMEOUT = 90.0
STOP_GRACE = 10.0
SECOND_SIGNAL_AFTER = 2.0
POLL = 0.1
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Record:
    """A process this module started."""

    name: str
    pid: int
    argv: list[str]
    fingerprint: str
    url: str
    health_url: str

    def matches(self, component: Component) -> bool:
        """Whether the process runs what `component` asks for."""
        return self.argv == list(component.argv) and self.fingerprint == component.fingerprint


_RECORD: TypeAdapter[Record] = TypeAdapter(Record)


def record(layout: Layout, name: str) -> Record | None:
    """The record of `name`, if there is one (an unreadable record counts as none)."""
    try:
        return _RECORD.validate_json(layout.run_record(name).read_bytes())
    except (OSError, ValidationError):
        return None


def alive(pid: int) -> bool:
    """Whether `pid` runs (reaping it first if it is our exited child: a zombie does not run)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def running(layout: Layout, name: str) -> Record | None:
    """The record of `name` if its process still runs (same pid, same command line)."""
    found = record(layout, name)
    if found is None or not alive(found.pid):
        return None
    try:
        cmdline = Path(f"/proc/{found.pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return None
    return found if [part.decode(errors="replace") for part in cmdline] == found.argv else None


def start(layout: Layout, component: Component) -> Record:
    """Start `component` detached (own session, stdin /dev/null, output to its log) and record it."""
    log = layout.log(component.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"--- {datetime.now(UTC).isoformat(timespec='seconds')} teeplane dev: starting {component.name}\n")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    pid = os.posix_spawn(
        component.argv[0],
        list(component.argv),
        os.environ | {"PYTHONSAFEPATH": "1"} | dict(component.env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    started = Record(component.name, pid, list(component.argv), component.fingerprint, component.url,
                     component.health_url)  # fmt: skip
    write(layout.run_record(component.name), json.dumps(asdict(started), indent=2).encode())
    return started


def stop(layout: Layout, names: Sequence[str], grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM the process groups of `names` together (SIGINT after a moment), SIGKILL what is left after
    `grace` seconds, and forget them; the pids that were running."""
    pids = [found.pid for name in names if (found := running(layout, name)) is not None]
    _signal_groups(pids, signal.SIGTERM)
    _wait_until(lambda: not any(alive(pid) for pid in pids), SECOND_SIGNAL_AFTER)
    # uvicorn waits for clients to close their keep-alive connections, until a SIGINT after the first signal.
    _signal_groups([pid for pid in pids if alive(pid)], signal.SIGINT)
    _wait_until(lambda: not any(alive(pid) for pid in pids), grace)
    # The group too: no child of a stopped process survives it.
    _signal_groups(pids, signal.SIGKILL)
    # Once `up` has exited they are init's children: a moment for init to reap them, so that a check
    # right after `down` finds no trace of them.
    _wait_until(lambda: not any(alive(pid) or Path(f"/proc/{pid}").exists() for pid in pids), grace)
    for name in names:
        layout.run_record(name).unlink(missing_ok=True)
    return pids


def _wait_until(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(POLL)


def _signal_groups(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def healthy(url: str, verify: Verify, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 (HTTPS verified as `verify` says, e.g. `trusting(layout.ca_file)`)."""
    try:
        return httpx.get(url, timeout=timeout, verify=verify).status_code == 200
    except httpx.HTTPError:
        return False


def wait_ready(layout: Layout, records: list[Record], progress: Progress, timeout: float = READY_TIMEOUT) -> None:
    """Wait until every process answers its health check; if one exits or times out, stop it and raise
    DevError naming it, with the tail of its log."""
    pending = list(records)
    deadline = time.monotonic() + timeout
    verify = trusting(layout.ca_file)  # once, not at every poll
    while pending:
        for started in list(pending):
            if healthy(started.health_url, verify):
                progress(f"{started.name} ready at {started.url} (pid {started.pid})")
                pending.remove(started)
            elif not alive(started.pid):
                _fail(layout, started, "exited")
            elif time.monotonic() > deadline:
                _fail(layout, started, f"did not answer {started.health_url} within {timeout:.0f}s")
        if pending:
            time.sleep(POLL)


def _fail(layout: Layout, started: Record, what: str) -> None:
    stop(layout, [started.name])
    log = layout.log(started.name)
    try:
        last = tail(log.read_text(errors="replace"))
    except OSError:
        last = "(no log)"
    raise DevError(
        COMPONENT_FAILED,
        f"{started.name} {what} (what started keeps running: `teeplane dev up` again after a fix, or "
        f"`teeplane dev down`); the end of {log}:\n{last}",
        where=started.name,
    )
