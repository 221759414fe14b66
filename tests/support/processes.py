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
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0
TEEPLANE = [sys.executable, "-c", "from teeplane.cli import main; main()"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_teeplane(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a `teeplane` command to completion."""
    env = os.environ | {"PYTHONSAFEPATH": "1"}
    return subprocess.run(
        [*TEEPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


@contextmanager
def service(name: str, args: list[str], workdir: Path, ready_path: str = "/healthz") -> Iterator[str]:
    """Run `teeplane <args> --port P` until the block ends; yield its base URL.

    Fails the test if the process dies, does not answer `ready_path` in time, or does not shut down
    cleanly on SIGTERM (uvicorn finishes its server, then re-raises the signal).
    """
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*TEEPLANE, *args, "--port", str(port)],
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONSAFEPATH": "1"},
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(name, base_url + ready_path, process, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SHUTDOWN_TIMEOUT)
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Finished server process" in log.read_text()


def _wait_until_ready(name: str, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{name} did not answer {url} within {STARTUP_TIMEOUT}s:\n{log.read_text()}")
