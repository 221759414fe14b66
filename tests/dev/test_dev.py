"""`teeplane dev`: the whole stack as real processes under a temporary state directory."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from ras_testing import reference_for
from typer.testing import CliRunner, Result

from teeplane.attestation.agent import attest
from teeplane.attestation.eps.app import create_eps_app
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.eps.provider import SimulatedTdxProvider
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.models import WorkloadIdentity
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.cli import app
from teeplane.dev import supervisor
from teeplane.dev.components import TIERS
from teeplane.dev.errors import DevError
from teeplane.dev.layout import Layout
from teeplane.dev.ports import choose
from teeplane.dev.stack import Stack, default_state_dir, down, status, up
from teeplane.remote import RemoteError
from teeplane.tks.client import TksClient
from teeplane.tks.jwe import open_for_tee
from teeplane.tks.models import CreateKey, ReleasePolicy
from teeplane.tls import trusting

WORKLOAD = WorkloadIdentity(namespace="payments", name="ledger", pod="ledger-0")
COMPONENTS = [name for tier in TIERS for name in tier if name != "operator"]


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A stack (without Kubernetes) up for the whole module, down at the end."""
    directory = tmp_path_factory.mktemp("dev-state")
    try:
        up(directory, kube=False)
        yield directory
    finally:
        down(directory)


def _dev(*args: str, env: dict[str, str] | None = None) -> Result:
    """`teeplane dev ARGS` (in this process: the command line, its output and exit code)."""
    return CliRunner().invoke(app, ["dev", *args], env=env)


def _pids(state: Path) -> dict[str, int]:
    layout = Layout(state)
    return {name: found.pid for name in COMPONENTS if (found := supervisor.running(layout, name))}


def _tks(stack: Stack, url: str) -> TksClient:
    return TksClient(url, admin_token=stack.admin_token(), verify=trusting(stack.ca_file), timeout=10)


def _leader(stack: Stack, timeout: float = 15.0) -> str:
    """The one TKS replica whose /healthz says leader (200), waiting for an election if need be."""
    deadline = time.monotonic() + timeout
    while True:
        answers = {u: httpx.get(u + "/healthz", verify=trusting(stack.ca_file)).status_code for u in stack.tks_urls}
        leaders = [url for url, code in answers.items() if code == 200]
        if len(leaders) == 1:
            return leaders[0]
        assert time.monotonic() < deadline, f"no single TKS leader: {answers}"
        time.sleep(0.1)


def _token(stack: Stack) -> tuple[str, ECKey]:
    """An attestation token from the stack's RAS for a simulated TD of the stack's authority."""
    authority = SimulationAuthority.load(stack.sim_dir)
    td = boot_example_td(authority)
    ras = RasClient(stack.ras_url, admin_token=stack.admin_token(), verify=trusting(stack.ca_file))
    ras.put_reference_values(WORKLOAD.namespace, WORKLOAD.name, reference_for(td))
    ras.put_policy(WORKLOAD.namespace, WORKLOAD.name, AppraisalPolicy(allow_simulated=True))
    eps = EpsClient(http=TestClient(create_eps_app(SimulatedTdxProvider(td, bundle_json(authority)))))
    result = attest(ras, eps, WORKLOAD)
    return result.token, ECKey.import_key(result.tee_key)


def _create(stack: Stack, url: str, key_id: str) -> None:
    policy = ReleasePolicy(workloads=["payments/ledger"], baselines=["baseline-example-1"], allow_simulated=True)
    _tks(stack, url).create(CreateKey(id=key_id, policy=policy))


def _release(stack: Stack, url: str, key_id: str, token: str, tee_key: ECKey) -> bytes:
    return open_for_tee(_tks(stack, url).release(key_id, token), tee_key)


def _sessions(sids: set[int]) -> list[int]:
    """Every process in one of the sessions `sids` (each component leads a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(fields[3]) in sids:
            found.append(int(entry.name))
    return found


def test_a_second_up_only_checks_and_everything_is_healthy(state: Path) -> None:
    stack = Stack.load(state)
    pids = _pids(state)
    assert sorted(pids) == sorted(COMPONENTS)
    again = _dev("up", "--state-dir", str(state), "--no-kube", "--json")
    assert again.exit_code == 0, again.stderr
    assert Stack.load(state) == stack
    assert json.loads(again.stdout) == json.loads(stack.to_json())
    assert _pids(state) == pids, "a second up restarted something"
    assert "starting" not in again.stderr and "tks2 ready" in again.stderr
    assert [(s.name, s.running, s.healthy) for s in status(state)] == [(n, True, True) for n in COMPONENTS]
    assert len(set(stack.tks_urls)) == 3 and stack.kubeconfig is None
    assert stack.admin_token_file.stat().st_mode & 0o777 == 0o600
    assert len(stack.admin_token()) > 30
    unauthorized = httpx.get(stack.tks_urls[0] + "/v1/keys", verify=trusting(stack.ca_file))
    assert unauthorized.status_code == 401
    shown = _dev("status", "--state-dir", str(state), "--json")
    assert shown.exit_code == 0 and {c["name"] for c in json.loads(shown.stdout)["components"]} == set(COMPONENTS)


def test_killing_a_tks_replica_leaves_tks_serving_and_up_restarts_it(state: Path) -> None:
    stack = Stack.load(state)
    token, tee_key = _token(stack)
    _create(stack, stack.tks_urls[0], "before-kill")
    released = {_release(stack, url, "before-kill", token, tee_key) for url in stack.tks_urls}
    assert len(released) == 1 and len(next(iter(released))) == 32

    leader = _leader(stack)
    name = f"tks{stack.tks_urls.index(leader)}"
    os.kill(_pids(state)[name], signal.SIGKILL)
    survivors = [url for url in stack.tks_urls if url != leader]
    deadline = time.monotonic() + 30
    while True:  # a new leader takes over once the killed one's lease expires
        try:
            _create(stack, survivors[0], "after-kill")
            break
        except RemoteError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert _release(stack, survivors[1], "after-kill", token, tee_key)
    assert _release(stack, survivors[0], "before-kill", token, tee_key) in released
    assert [s.name for s in status(state) if not s.running] == [name]

    restarted = up(state, kube=False)
    assert restarted == stack and sorted(_pids(state)) == sorted(COMPONENTS)
    assert _release(stack, leader, "after-kill", token, tee_key)


def test_a_component_that_cannot_start_fails_up_naming_it(state: Path) -> None:
    layout = Layout(state)
    key = layout.bgs_signing_key
    good = key.read_bytes()
    supervisor.stop(layout, ["bgs"])
    key.write_bytes(b"not a key")
    try:
        failed = _dev("up", "--state-dir", str(state), "--no-kube", "--json")
    finally:
        key.write_bytes(good)
    assert failed.exit_code == 2, failed.stderr
    (error,) = json.loads(failed.stdout)["errors"]
    assert (error["code"], error["where"]) == ("dev.component_failed", "bgs")
    assert "bgs exited" in error["message"] and str(layout.log("bgs")) in error["message"]
    assert "signing key" in error["message"]  # the tail of its log says why
    assert "starting bgs" in failed.stderr and not isinstance(failed.exception, Exception)
    unhealthy = _dev("status", "--state-dir", str(state))
    assert unhealthy.exit_code == 3 and "bgs" in unhealthy.stdout
    up(state, kube=False)
    assert all(s.healthy for s in status(state))


def test_down_leaves_no_process_and_up_brings_back_the_same_stack(state: Path) -> None:
    stack = Stack.load(state)
    token, tee_key = _token(stack)
    _create(stack, stack.tks_urls[1], "survives-restart")
    before = _release(stack, stack.tks_urls[2], "survives-restart", token, tee_key)
    pids = _pids(state)

    down(state)
    assert _sessions(set(pids.values())) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert [s.running for s in status(state)] == [False] * len(COMPONENTS)
    with pytest.raises(DevError) as not_up:
        Stack.load(state)
    assert not_up.value.code == "dev.not_up"

    # Something else took BGS's port meanwhile: BGS moves, everything else keeps its URL.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(stack.bgs_url.rpartition(":")[2])))
        squatter.listen()
        again = up(state, kube=False)
    assert again.bgs_url != stack.bgs_url and Stack.load(state) == again
    assert dataclasses.replace(again, bgs_url=stack.bgs_url) == stack
    assert again.admin_token() == stack.admin_token()
    assert _release(again, again.tks_urls[0], "survives-restart", token, tee_key) == before


def test_up_without_the_hack_scripts_is_a_clear_error(tmp_path: Path) -> None:
    env = {"TEEPLANE_HACK": str(tmp_path / "nowhere")}
    failed = _dev("up", "--state-dir", str(tmp_path / "state"), "--no-kube", env=env)
    assert failed.exit_code == 2
    assert f"dev.hack_missing: no hack/etcd.sh in TEEPLANE_HACK={tmp_path / 'nowhere'}" in failed.stderr
    assert not isinstance(failed.exception, Exception) and not (tmp_path / "state").exists()


def test_load_and_status_of_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DevError) as error:
        Stack.load(tmp_path)
    assert error.value.code == "dev.not_up" and str(tmp_path) in error.value.message
    assert status(tmp_path) == []
    shown = _dev("status", "--state-dir", str(tmp_path))
    assert shown.exit_code == 3 and "nothing was started" in shown.stdout
    (tmp_path / "stack.json").write_text("{}")
    with pytest.raises(DevError, match=r"dev\.state_corrupt"):
        Stack.load(tmp_path)
    down(tmp_path / "never-up", purge=True)
    down(tmp_path, purge=True)
    assert not tmp_path.exists()


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TEEPLANE_DEV_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "teeplane" / "dev"
    monkeypatch.setenv("TEEPLANE_DEV_STATE", "/somewhere/else")
    assert default_state_dir() == Path("/somewhere/else")


def test_ports_are_kept_unless_taken_while_stopped() -> None:
    owners = {"a": "x", "a-peer": "x", "b": "y", "c": "z"}
    saved = {"a": 1001, "a-peer": 1002, "b": 1003}
    taken = {1001, 1003}

    def fresh(count: int, avoid: set[int]) -> list[int]:
        assert avoid.isdisjoint(range(2000, 2000 + count))
        return list(range(2000, 2000 + count))

    # x runs (its ports stay even though in use), y stopped and its port taken, z never had one.
    chosen = choose(saved, owners, {"x"}, free=lambda port: port not in taken, fresh=fresh)
    assert chosen == {"a": 1001, "a-peer": 1002, "b": 2000, "c": 2001}


@pytest.mark.kube
def test_up_with_kubernetes_runs_the_operator_and_down_stops_the_cluster(tmp_path: Path) -> None:
    try:
        stack = up(tmp_path, kube=True)
        assert stack.kubeconfig == tmp_path / "cluster" / "kubeconfig"
        found = {s.name: s for s in status(tmp_path)}
        assert list(found) == [*COMPONENTS, "operator", "kubernetes"]
        assert all(s.healthy for s in found.values()), found
        crd = subprocess.run(
            ["kubectl", "--kubeconfig", str(stack.kubeconfig), "get", "crd", "confidentialworkloads.teeplane.io"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert crd.returncode == 0, crd.stderr
        pids = {s.pid for s in found.values() if s.pid} | {
            int(p.read_text()) for p in (tmp_path / "cluster" / "run").glob("*.pid")
        }
        assert up(tmp_path, kube=True) == stack
        assert {s.pid for s in status(tmp_path) if s.pid} <= pids
    finally:
        down(tmp_path)
    assert _sessions(pids) == [] and not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(s.running for s in status(tmp_path))
