"""`teeplane demo`, the README's main command, as a user runs it, with the local Kubernetes: every
step reaches its expected outcome even when a TKS replica (the leader) is killed during the run, and
`teeplane dev down` leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from processes import TEEPLANE, run_teeplane

from teeplane.baseline.example import initdata
from teeplane.demo.flow import BASELINE_NAME, BASELINE_VERSION
from teeplane.dev import supervisor
from teeplane.dev.components import TIERS
from teeplane.dev.layout import Layout
from teeplane.dev.stack import Stack
from teeplane.tls import trusting

REPO = Path(__file__).resolve().parents[2]
STEPS = 12
COMPONENTS = [name for tier in TIERS for name in tier]


def _kill_the_tks_leader(state: Path) -> str:
    ca_file = Stack.load(state).ca_file
    for name in (n for n in COMPONENTS if n.startswith("tks")):
        found = supervisor.running(Layout(state), name)
        if found and httpx.get(found.url + "/healthz", verify=trusting(ca_file), timeout=5).status_code == 200:
            os.kill(found.pid, signal.SIGKILL)
            return name
    raise AssertionError("no TKS leader")


@pytest.mark.kube
def test_the_demo_passes_while_a_tks_replica_dies_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    demo = subprocess.Popen([*TEEPLANE, "demo", "--kube", "--state-dir", str(state)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines, killed = [], None
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith(" 2. ok") and killed is None:  # the baseline is logged; keys come next
                killed = _kill_the_tks_leader(state)
        assert demo.wait(timeout=600) == 0, "".join(lines)
        output = "".join(lines)
        assert killed is not None and "demo passed" in output and "FAILED" not in output
        assert sum(line[4:6] == "ok" for line in lines) == STEPS, output
        assert "plaintext: b'ledger entry 42: alice pays bob 10 EUR'" in output
        assert "policy.measurement_mismatch at measurements.rtmr1" in output
        assert "confidentialworkload.teeplane.io/ledger created" in output
        assert re.search(r"^\s+Ready\s+True\s", output, re.MULTILINE), output
    finally:
        demo.kill()
        pids = [r.pid for n in COMPONENTS if (r := supervisor.record(Layout(state), n))]
        down = run_teeplane("dev", "down", "--state-dir", str(state), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert len(pids) == len(COMPONENTS) and not [pid for pid in pids if supervisor.alive(pid)]
    survivors = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True, check=False).stdout
    assert not survivors, survivors  # the cluster's processes too


def test_the_example_workload_carries_the_example_builds_initdata() -> None:
    """The operator refuses a workload whose initdata is not what its baseline measured (MRCONFIGID)."""
    example = yaml.safe_load((REPO / "examples" / "confidentialworkload.yaml").read_text())
    assert example["spec"]["initdata"].encode() == initdata()
    assert example["spec"]["baseline"] == f"{BASELINE_NAME}@{BASELINE_VERSION}"
