"""Real TEEPlane service processes for tests: started on a free loopback port, stopped cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from teeplane.tls import trusting

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
TEEPLANE = [sys.executable, "-c", "from teeplane.cli import main; main()"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen, so the system
    cannot hand out the same port twice."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_teeplane(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a `teeplane` command to completion."""
    env = os.environ | {"PYTHONSAFEPATH": "1"}
    return subprocess.run(
        [*TEEPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@dataclass
class Service:
    """A `teeplane` service process on a loopback port."""

    name: str
    args: list[str]
    workdir: Path
    ready_path: str = "/healthz"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    #: The CA that issued the service's TLS certificate: the service speaks HTTPS.
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        """Start the process (again, on the same port) and wait until it is ready."""
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*TEEPLANE, *self.args, "--port", str(self.port)],
                cwd=self.workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=os.environ | {"PYTHONSAFEPATH": "1"},
            )
        _wait_until_ready(self.name, self.url + self.ready_path, self.process, self.log, self.ca_file)

    def kill(self) -> None:
        """SIGKILL the process."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(SHUTDOWN_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, and check the server finished cleanly (uvicorn re-raises the signal after)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(SHUTDOWN_TIMEOUT)
        assert self.process.returncode in (0, -signal.SIGTERM), self.log.read_text()
        assert "Finished server process" in self.log.read_text()


@contextmanager
def service(
    name: str, args: list[str], workdir: Path, ready_path: str = "/healthz", ca_file: Path | None = None
) -> Iterator[str]:
    """Run `teeplane <args> --port P` until the block ends; yield its base URL (HTTPS with `ca_file`).

    Fails the test if the process dies, does not answer `ready_path` in time, or does not shut down
    cleanly on SIGTERM.
    """
    running = Service(name, args, workdir, ready_path, ca_file=ca_file)
    try:
        running.start()
        yield running.url
    finally:
        running.stop()


def _wait_until_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Path, ca_file: Path | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0, verify=trusting(ca_file)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{name} did not answer {url} within {STARTUP_TIMEOUT}s:\n{log.read_text()}")
