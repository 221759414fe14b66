"""Load generation shared by the service benchmarks: raw keep-alive HTTP/1.1 connections,
closed and open loops, CPU probes, and the machine description.

A general-purpose HTTP client costs more per request than the services under test, so requests
are pre-serialised bytes written to plain asyncio streams (run the loops under uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
#: A phase whose load generator used this much of its CPU measured the client as much as the server.
CLIENT_BOUND = 0.9


@dataclass
class Run:
    """One timed phase: latencies of successful requests, failures, wall time and CPU."""

    label: str
    concurrency: int | None
    target_per_s: float | None
    requests: int
    errors: int
    wall_s: float
    per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_ms_per_request: float | None
    server_cpu_utilisation: float | None
    client_cpu_utilisation: float
    handler_ms_mean: float | None


def http_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request, serialised."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection that sends pre-serialised requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        """Connect to `http://host:port`."""
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send(self, request: bytes) -> bool:
        """Send one request and read its response; True on 200."""
        self._writer.write(request)
        try:
            status_and_headers = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        length = 0
        for line in status_and_headers.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self._reader.readexactly(length)
        return status_and_headers.startswith(b"HTTP/1.1 200")

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        await self._writer.wait_closed()


@asynccontextmanager
async def connections(base_url: str, count: int) -> AsyncIterator[list[Connection]]:
    """`count` keep-alive connections."""
    opened = [await Connection.open(base_url) for _ in range(count)]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all threads (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_process(pid: int, allowed: set[int]) -> None:
    """Pin every thread of a running process to these CPUs (no-op when none are given or off Linux)."""
    if not allowed or not hasattr(os, "sched_setaffinity"):
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), allowed)


def cpus() -> tuple[int | None, int | None]:
    """The server's and the load generator's CPUs: the first two this process may use."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (allowed[0], allowed[1]) if len(allowed) >= 2 else (None, None)


async def histogram(client: httpx.AsyncClient, metric: str) -> tuple[float, float] | None:
    """Sum and count of a Prometheus histogram the server exports at /metrics."""
    text = (await client.get("/metrics")).text
    values = {}
    for line in text.splitlines():
        for key in (f"{metric}_sum", f"{metric}_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    if len(values) != 2:
        return None
    return values[f"{metric}_sum"], values[f"{metric}_count"]


class Probe:
    """CPU of server and client and the server's handler histogram, across one timed phase."""

    def __init__(self, client: httpx.AsyncClient, server_pid: int, metric: str) -> None:
        self.client, self.pid, self.metric = client, server_pid, metric

    async def __aenter__(self) -> Probe:
        self.handler = await histogram(self.client, self.metric)
        self.server_cpu = cpu_seconds(self.pid)
        self.client_cpu = time.process_time()
        self.start = time.perf_counter()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.start
        server_cpu = cpu_seconds(self.pid)
        self.server_cpu_used = None if server_cpu is None or self.server_cpu is None else server_cpu - self.server_cpu
        self.client_cpu_used = time.process_time() - self.client_cpu
        handler = await histogram(self.client, self.metric)
        self.handler_mean = None
        if handler is not None and self.handler is not None and handler[1] > self.handler[1]:
            self.handler_mean = (handler[0] - self.handler[0]) / (handler[1] - self.handler[1])


@dataclass(frozen=True)
class Target:
    """The server under load: its URL, process (for CPU) and handler histogram."""

    base_url: str
    pid: int
    metric: str


async def closed_loop(
    target: Target, metrics: httpx.AsyncClient, requests: Sequence[bytes], concurrency: int, seconds: float, label: str
) -> Run:
    """`concurrency` connections each send the next request as soon as their previous response arrived."""
    queue = iter(requests)
    latencies: list[float] = []
    errors = 0

    async def worker(client: Connection, deadline: float) -> None:
        nonlocal errors
        for request in queue:
            if time.perf_counter() > deadline:
                return
            start = time.perf_counter()
            if await client.send(request):
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    async with (
        connections(target.base_url, concurrency) as clients,
        Probe(metrics, target.pid, target.metric) as probe,
    ):
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(worker(client, deadline) for client in clients))
    return summarize(f"{label} c={concurrency}", concurrency, None, latencies, errors, probe)


async def open_loop(
    target: Target, metrics: httpx.AsyncClient, requests: Sequence[bytes], rate: float, seconds: float, concurrency: int
) -> Run:
    """Send at a fixed rate whatever the responses, over up to `concurrency` connections; latency
    counts from each request's scheduled send time (so time queued behind busy connections counts)."""
    count = min(len(requests), int(rate * seconds))
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[bytes, float] | None] = asyncio.Queue()

    async def worker(client: Connection) -> None:
        nonlocal errors
        while (item := await queue.get()) is not None:
            request, scheduled = item
            if await client.send(request):
                latencies.append(time.perf_counter() - scheduled)
            else:
                errors += 1

    async with (
        connections(target.base_url, concurrency) as clients,
        Probe(metrics, target.pid, target.metric) as probe,
    ):
        workers = [asyncio.create_task(worker(client)) for client in clients]
        start = time.perf_counter() + 0.01
        for index, request in enumerate(requests[:count]):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((request, scheduled))
        for _ in workers:
            queue.put_nowait(None)
        _, stuck = await asyncio.wait(workers, timeout=max(30.0, seconds))
        for task in stuck:
            task.cancel()
    return summarize(f"open {rate:.0f}/s", None, rate, latencies, errors, probe)


#: An open-loop run keeps up when it completes this share of the offered rate...
KEEP_UP_SHARE = 0.97
#: ...and its p99 stays under this (a queue that grows through the run ends far above it).
KEEP_UP_P99_MS = 250.0


def keeps_up(run: Run, rate: float) -> bool:
    """Whether an open-loop run at `rate` was sustained: no errors, the rate achieved, no runaway queue."""
    return run.errors == 0 and run.per_s >= KEEP_UP_SHARE * rate and run.p99_ms < KEEP_UP_P99_MS


async def sustained_rate(
    target: Target,
    metrics: httpx.AsyncClient,
    requests_for: Callable[[int], Awaitable[Sequence[bytes]]],
    bounds: tuple[float, float],
    seconds: float,
    concurrency: int,
    steps: int,
) -> tuple[float, list[Run]]:
    """Saturation measured the way the latency target is: the highest fixed rate the server keeps
    up with over `concurrency` connections, by bisection within `bounds` (`steps` open-loop runs of
    `seconds`; `requests_for(n)` makes n fresh requests). The lower bound is returned if no run
    keeps up."""
    low, high = bounds
    runs = []
    for _ in range(steps):
        rate = (low + high) / 2
        run = await open_loop(target, metrics, await requests_for(int(rate * seconds)), rate, seconds, concurrency)
        runs.append(run)
        low, high = (rate, high) if keeps_up(run, rate) else (low, rate)
    return low, runs


def summarize(
    label: str, concurrency: int | None, rate: float | None, latencies: list[float], errors: int, probe: Probe
) -> Run:
    """A Run from a phase's latencies and probe."""
    latencies.sort()
    done, server_cpu = len(latencies), probe.server_cpu_used
    ms = [x * 1e3 for x in latencies] or [float("nan")]
    return Run(
        label=label,
        concurrency=concurrency,
        target_per_s=rate,
        requests=done,
        errors=errors,
        wall_s=round(probe.wall, 3),
        per_s=round(done / probe.wall, 1),
        p50_ms=round(statistics.median(ms), 3),
        p99_ms=round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
        max_ms=round(ms[-1], 3),
        server_cpu_ms_per_request=round(server_cpu * 1e3 / done, 3) if server_cpu and done else None,
        server_cpu_utilisation=round(server_cpu / probe.wall, 2) if server_cpu else None,
        client_cpu_utilisation=round(probe.client_cpu_used / probe.wall, 2),
        handler_ms_mean=round(probe.handler_mean * 1e3, 3) if probe.handler_mean is not None else None,
    )


def print_runs(runs: Sequence[dict[str, object]]) -> None:
    """The phases as a table."""
    header = f"{'phase':<16}{'req':>7}{'err':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header + f"{'srv ms/req':>12}{'srv CPU':>9}{'cli CPU':>9}{'handler ms':>12}")
    for run in runs:
        cpu, util, handler = run["server_cpu_ms_per_request"], run["server_cpu_utilisation"], run["handler_ms_mean"]
        client = run["client_cpu_utilisation"]
        assert isinstance(client, float | int)
        print(
            f"{run['label']:<16}{run['requests']:>7}{run['errors']:>5}{run['per_s']:>9.1f}{run['p50_ms']:>9.2f}"
            f"{run['p99_ms']:>9.2f}{run['max_ms']:>9.2f}{cpu if cpu is not None else '-':>12}"
            f"{f'{util:.0%}' if isinstance(util, float) else '-':>9}{client:>9.0%}"
            f"{handler if handler is not None else '-':>12}"
            + ("  (load generator bound)" if client >= CLIENT_BOUND else "")
        )


# --- in-process references ------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Wall and CPU seconds per call."""

    wall: float
    cpu: float


def timed(fn: Callable[[int], object], count: int, seconds: float) -> Timing:
    """Seconds per call of fn(i) over at most `count` calls or about `seconds`."""
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    calls = 0
    while calls < count:
        fn(calls)
        calls += 1
        if time.perf_counter() > deadline:
            break
    return Timing((time.perf_counter() - start) / calls, (time.process_time() - cpu) / calls)


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to the microsecond."""
    return round(seconds * 1e3, 3)


# --- the machine ----------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on HOST."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_stack() -> str:
    """Versions of the libraries the services run on."""
    versions = []
    for name in ("uvicorn", "fastapi", "starlette", "pydantic", "httptools", "uvloop", "cryptography", "joserfc"):
        try:
            module = __import__(name)
            versions.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            versions.append(f"no {name}")
    return ", ".join(versions)


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(server_cpu: int | None, client_cpu: int | None) -> dict[str, object]:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "server": server_stack(),
    }


def print_machine(described: dict[str, object]) -> None:
    """The machine, as `machine` describes it."""
    print(f"machine: {described['cpu']}, {described['cpus']} CPUs (server on {described['server_cpu']}, ", end="")
    print(f"load generator on {described['client_cpu']}), Python {described['python']}")
    print(f"server stack: {described['server']}")


def report(figures: dict[str, Any], as_json: bool, printer: Callable[[dict[str, Any]], None]) -> int:
    """Print the figures as JSON or through `printer`; the exit code."""
    if as_json:
        print(json.dumps(figures, indent=2))
    else:
        printer(figures)
    return 0


def levels(text: str) -> list[int]:
    """Parse `1,2,4` into concurrency levels."""
    parsed = [int(x) for x in text.split(",")]
    if not parsed or min(parsed) < 1:
        raise ValueError("concurrency levels are positive integers")
    return parsed
