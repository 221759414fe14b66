"""TKS replicas as real processes on real etcd, with tokens from real RAS, EPS and agent processes."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from etcd_cluster import etcd_cluster
from joserfc.jwk import ECKey
from processes import run_teeplane, service
from ras_testing import reference_for
from service_files import ServiceFiles

from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.tks.jwe import open_for_tee

ADMIN = "tks-admin-token"


def _wait_for_leader(urls: list[str], timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = [u for u in urls if httpx.get(u + "/healthz", timeout=2).status_code == 200]
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.1)
    raise AssertionError("no single leader was elected")


def test_replicas_release_forward_writes_and_agree_on_the_leader(tmp_path: Path) -> None:
    files = ServiceFiles.write(tmp_path, ADMIN)
    with etcd_cluster(tmp_path) as etcd, ExitStack() as stack:
        eps = stack.enter_context(service("eps", files.eps_args(), tmp_path))
        ras = stack.enter_context(service("ras", files.ras_args(), tmp_path))
        RasClient(ras, admin_token=ADMIN).put_reference_values("payments", "ledger", reference_for(files.td))
        RasClient(ras, admin_token=ADMIN).put_policy("payments", "ledger", AppraisalPolicy(allow_simulated=True))
        replicas = [(f"tks{i}", files.tks_args(etcd.endpoints, ras, "--member-id", f"tks{i}")) for i in range(2)]
        urls = [stack.enter_context(service(name, args, tmp_path, "/readyz")) for name, args in replicas]
        leader = _wait_for_leader(urls)
        follower = next(u for u in urls if u != leader)
        assert httpx.get(follower + "/healthz").status_code == 429
        cluster = httpx.get(follower + "/v1/cluster").json()
        assert cluster["leader"]["url"] == leader and cluster["is_leader"] is False

        admin = {"Authorization": f"Bearer {ADMIN}"}
        policy = {"workloads": ["payments/ledger"], "baselines": ["baseline-example-1"], "allow_simulated": True}
        created = httpx.post(follower + "/v1/keys", json={"id": "ledger-key", "policy": policy}, headers=admin)
        assert created.status_code == 201, created.text  # forwarded to the leader, committed in etcd
        assert httpx.post(follower + "/v1/keys", json={"id": "ledger-key", "policy": policy}).status_code == 401

        agent = run_teeplane("agent", "attest", "--ras", ras, "--eps", eps, "--namespace", "payments", "--name",
                             "ledger", "--key-out", str(tmp_path / "tee.pem"), "--json", cwd=tmp_path)  # fmt: skip
        assert agent.returncode == 0, agent.stderr
        token = json.loads(agent.stdout)["token"]
        tee_key = serialization.load_pem_private_key((tmp_path / "tee.pem").read_bytes(), None)
        materials = set()
        for url in urls:
            released = httpx.post(url + "/v1/keys/ledger-key/release", headers={"Authorization": f"Bearer {token}"})
            assert released.status_code == 200, released.text
            assert released.headers["content-type"].startswith("application/jose")
            materials.add(open_for_tee(released.text, ECKey.import_key(tee_key)))
        assert len(materials) == 1 and len(next(iter(materials))) == 32

        refused = httpx.post(follower + "/v1/keys/ledger-key/release")
        assert (refused.status_code, refused.json()["code"]) == (401, "token.missing")
        assert refused.headers["content-type"] == "application/problem+json"
