"""TKS replicas as real processes on real etcd, with tokens from real RAS, EPS and agent processes."""

from __future__ import annotations

import json
import secrets
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from etcd_cluster import etcd_cluster
from joserfc.jwk import ECKey
from processes import run_teeplane, service
from ras_testing import reference_for

from teeplane.attestation.demo import boot_example_td
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.pki import SimulationAuthority, pem
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
    now = datetime.now(UTC)
    authority = SimulationAuthority.generate(now - timedelta(hours=1))
    authority.save(tmp_path / "sim")
    root = tmp_path / "root.pem"
    root.write_bytes(pem(authority.root_cert))
    collateral = tmp_path / "collateral.json"
    collateral.write_bytes(bundle_json(authority, now - timedelta(minutes=5)))
    tokens = tmp_path / "admin-tokens"
    tokens.write_text(ADMIN + "\n")
    kek = tmp_path / "kek"
    kek.write_bytes(secrets.token_bytes(32))

    with etcd_cluster(tmp_path) as etcd, ExitStack() as stack:
        eps = stack.enter_context(service("eps", ["eps", "serve", "--provider", "simulated", "--sim-state",
                                                  str(tmp_path / "sim")], tmp_path))  # fmt: skip
        ras = stack.enter_context(service("ras", ["ras", "serve", "--state", str(tmp_path / "ras"),
                                                  "--admin-token-file", str(tokens), "--simulation-root", str(root),
                                                  "--simulation-collateral", str(collateral)], tmp_path))  # fmt: skip
        RasClient(ras, admin_token=ADMIN).put_reference_values(
            "payments", "ledger", reference_for(boot_example_td(authority))
        )
        RasClient(ras, admin_token=ADMIN).put_policy("payments", "ledger", AppraisalPolicy(allow_simulated=True))
        jwks = ras + "/.well-known/jwks.json"
        tks_common = ["tks", "serve", "--etcd", ",".join(etcd.endpoints), "--ras-jwks-url", jwks,
                      "--admin-token-file", str(tokens), "--kek-file", str(kek)]  # fmt: skip
        replicas = [(f"tks{i}", [*tks_common, "--member-id", f"tks{i}"]) for i in range(2)]
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
