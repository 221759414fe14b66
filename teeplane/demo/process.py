"""The demo's processes: `teeplane` commands run to completion, and a simulated TD serving evidence."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from teeplane.dev.components import TEEPLANE
from teeplane.dev.ports import fresh_ports
from teeplane.errors import TeeplaneError

_START_TIMEOUT = 60.0


class DemoError(TeeplaneError):
    """A demo process that could not be run at all (not a refusal the demo expects)."""

    exit_code = 1


@dataclass(frozen=True)
class Outcome:
    """A finished `teeplane` command: its exit code, its JSON output (if any) and its errors."""

    returncode: int
    output: dict[str, Any]
    stderr: str

    def errors(self) -> list[dict[str, Any]]:
        """The errors it reported (with --json): each with its stable code, message and where."""
        return [e for e in self.output.get("errors", []) if isinstance(e, dict)]


def teeplane(*args: str, cwd: Path, timeout: float = 180.0) -> Outcome:
    """Run `teeplane ARGS` to completion; its stdout is read as JSON when it is JSON."""
    done = subprocess.run([*TEEPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        output = json.loads(done.stdout) if done.stdout.strip() else {}
    except ValueError:
        output = {}
    return Outcome(done.returncode, output if isinstance(output, dict) else {}, done.stderr)


@contextmanager
def simulated_td(recipe: Path, sim_dir: Path, bundle: Path, workdir: Path) -> Iterator[str]:
    """A simulated TD booted from `recipe`, its EPS on a free loopback port, until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    (port,) = fresh_ports(1, set())
    url = f"http://127.0.0.1:{port}"
    args = ["eps", "serve", "--provider", "simulated", "--sim-state", str(sim_dir), "--recipe", str(recipe),
            "--baseline-bundle", str(bundle), "--port", str(port)]  # fmt: skip
    log = workdir / "eps.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*TEEPLANE, *args], cwd=workdir, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_ready(process, url + "/.well-known/teeplane", log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError("demo.td_failed", f"the simulated TD exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise DemoError("demo.td_failed", f"the simulated TD did not answer {url} within {_START_TIMEOUT:.0f}s")
