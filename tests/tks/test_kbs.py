"""The KBS protocol surface of TKS, spoken as the Confidential Containers attestation agent speaks it.

Real processes on loopback: etcd, RAS (trusting a simulation root) and one TKS replica. The client
here follows the attestation agent's RCAR client step by step, independently of TEEPlane's code:
the Request with its supported hash algorithms, the Challenge's selected algorithm, runtime data
serialised as serde_json does (compact, sorted keys), SHA-384 padded into report_data, TDX evidence
as {"quote", "cc_eventlog"} in standard base64, the cookie carried by the HTTP client, and the
resource answer opened as a flattened-JSON JWE with the TEE's private key (joserfc).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from etcd_cluster import etcd_cluster
from joserfc import jwe
from joserfc.jwk import ECKey
from processes import service
from ras_testing import reference_for
from service_files import ServiceFiles
from tks_cluster import LONE_REPLICA

from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.attestation.sim.td import SimulatedTd

ADMIN = "kbs-admin-token"
NAMESPACE, NAME = "payments", "ledger"
KEY_ID = "default.key.ledger"
RESOURCE = "default/key/ledger"


@dataclass
class Stack:
    tks: str
    td: SimulatedTd

    def kbs(self, workload: str = f"{NAMESPACE}/{NAME}") -> str:
        """The guest's KBS URL for a workload (the attestation agent appends /kbs/v0/...)."""
        return f"{self.tks}/workloads/{workload}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("kbs")
    files = ServiceFiles.write(tmp, ADMIN)
    td = files.td
    with etcd_cluster(tmp, 1) as etcd, ExitStack() as stack:
        ras = stack.enter_context(service("ras", files.ras_args(), tmp))
        client = RasClient(ras, admin_token=ADMIN)
        client.put_reference_values(NAMESPACE, NAME, reference_for(td))
        client.put_policy(NAMESPACE, NAME, AppraisalPolicy(allow_simulated=True))
        client.put_reference_values("payments", "other", reference_for(td))
        client.put_policy("payments", "other", AppraisalPolicy(allow_simulated=True))
        tks_args = files.tks_args(etcd.endpoints, ras, *LONE_REPLICA)
        tks = stack.enter_context(service("tks", tks_args, tmp, "/readyz"))
        policy = {"workloads": [f"{NAMESPACE}/{NAME}"], "baselines": ["baseline-example-1"], "allow_simulated": True}
        secret = base64.urlsafe_b64encode(b"ledger database password").rstrip(b"=").decode()
        created = httpx.post(tks + "/v1/keys", json={"id": KEY_ID, "kind": "secret", "value": secret, "policy": policy},
                             headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
        assert created.status_code == 201, created.text
        yield Stack(tks, td)


class Guest:
    """A Confidential Containers guest: its KBS client, TEE key and simulated TD."""

    def __init__(self, kbs_url: str, td: SimulatedTd) -> None:
        self.http = httpx.Client(base_url=kbs_url + "/kbs/v0", timeout=10.0)
        self.td = td
        self.key = ECKey.generate_key("P-256", private=True)
        public = self.key.as_dict(private=False)
        self.pubkey = {"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": public["x"], "y": public["y"]}

    def auth(self, tee: str = "tdx", extra: dict[str, Any] | None = None) -> httpx.Response:
        params = extra if extra is not None else {"supported-hash-algorithms": ["sha256", "sha384", "sha512"]}
        return self.http.post("/auth", json={"version": "0.4.0", "tee": tee, "extra-params": params})

    def evidence(self, nonce: str, algorithm: str, *, pubkey: dict[str, Any] | None = None) -> dict[str, Any]:
        runtime_data = {"tee-pubkey": pubkey or self.pubkey, "nonce": nonce}
        runtime = json.dumps(runtime_data, sort_keys=True, separators=(",", ":"))
        digest = hashlib.new(algorithm, runtime.encode()).digest()
        quote = self.td.quote(digest.ljust(64, b"\0"))
        return {"quote": base64.b64encode(quote).decode(), "cc_eventlog": None}

    def attestation(self, nonce: str, evidence: dict[str, Any]) -> dict[str, Any]:
        return {
            "runtime-data": {"nonce": nonce, "tee-pubkey": self.pubkey},
            "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
        }

    def handshake(self) -> httpx.Response:
        challenge = self.auth()
        assert challenge.status_code == 200, challenge.text
        nonce = challenge.json()["nonce"]
        algorithm = challenge.json()["extra-params"]["selected-hash-algorithm"]
        return self.http.post("/attest", json=self.attestation(nonce, self.evidence(nonce, algorithm)))

    def resource(self, path: str = RESOURCE) -> httpx.Response:
        return self.http.get(f"/resource/{path}")

    def open(self, response: httpx.Response) -> bytes:
        body = response.json()
        assert set(body) == {"protected", "encrypted_key", "iv", "ciphertext", "tag"}
        # Like the agent, read only alg, enc and epk; other header members are authenticated data.
        registry = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "A256GCM"], strict_check_header=False)
        opened = jwe.decrypt_json(body, self.key, registry=registry)
        assert opened.plaintext is not None
        return opened.plaintext


def _refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_the_attestation_agent_flow_gets_the_key(stack: Stack) -> None:
    guest = Guest(stack.kbs(), stack.td)
    attested = guest.handshake()
    assert attested.status_code == 200, attested.text
    token = attested.json()["token"]
    assert guest.http.cookies["kbs-session-id"] == token
    released = guest.resource()
    assert released.status_code == 200, released.text
    assert guest.open(released) == b"ledger database password"
    # The token alone works as a bearer credential too (the agent's token client).
    bearer = httpx.get(f"{stack.tks}/kbs/v0/resource/{RESOURCE}", headers={"Authorization": f"Bearer {token}"})
    assert guest.open(bearer) == b"ledger database password"


def test_the_earlier_attestation_form_is_accepted(stack: Stack) -> None:
    guest = Guest(stack.kbs(), stack.td)
    nonce = guest.auth().json()["nonce"]
    legacy = {"tee-pubkey": guest.pubkey, "tee-evidence": guest.evidence(nonce, "sha384")}
    assert guest.http.post("/attest", json=legacy).status_code == 200
    assert guest.open(guest.resource()) == b"ledger database password"


def test_the_workload_can_be_named_in_extra_params(stack: Stack) -> None:
    guest = Guest(stack.tks, stack.td)
    challenge = guest.auth(extra={"workload": f"{NAMESPACE}/{NAME}"})
    nonce = challenge.json()["nonce"]
    assert guest.http.post("/attest", json=guest.attestation(nonce, guest.evidence(nonce, "sha384"))).status_code == 200
    assert guest.open(guest.resource()) == b"ledger database password"
    _refused(Guest(stack.tks, stack.td).auth(), 400, "kbs.workload_unknown")


def test_resource_needs_an_attested_session(stack: Stack) -> None:
    guest = Guest(stack.kbs(), stack.td)
    _refused(guest.resource(), 401, "kbs.session_missing")
    guest.auth()  # a handshake in progress is not an attestation
    _refused(guest.resource(), 401, "kbs.session_missing")
    _refused(Guest(stack.kbs(), stack.td).http.post("/attest", json={}), 401, "kbs.session_missing")


def test_refusals_name_what_failed(stack: Stack) -> None:
    guest = Guest(stack.kbs(), stack.td)
    nonce = guest.auth().json()["nonce"]
    # Evidence bound with another hash than the one the Challenge selected.
    _refused(guest.http.post("/attest", json=guest.attestation(nonce, guest.evidence(nonce, "sha512"))), 401,
             "binding.report_data_mismatch")  # fmt: skip
    # Runtime data naming another nonce than the session's.
    nonce = guest.auth().json()["nonce"]
    other = guest.attestation("AAAA", guest.evidence("AAAA", "sha384"))
    _refused(guest.http.post("/attest", json=other), 403, "kbs.nonce_mismatch")
    # Evidence binding another TEE key than the one presented.
    stolen = guest.evidence(nonce, "sha384", pubkey={**guest.pubkey, "x": guest.pubkey["y"]})
    _refused(guest.http.post("/attest", json=guest.attestation(nonce, stolen)), 401, "binding.report_data_mismatch")
    # A nonce is single-use: replaying an accepted attestation with its handshake cookie is refused.
    fresh = Guest(stack.kbs(), stack.td)
    nonce = fresh.auth().json()["nonce"]
    handshake = fresh.http.cookies["kbs-session-id"]
    attestation = fresh.attestation(nonce, fresh.evidence(nonce, "sha384"))
    assert fresh.http.post("/attest", json=attestation).status_code == 200
    replay = httpx.post(stack.kbs() + "/kbs/v0/attest", json=attestation, cookies={"kbs-session-id": handshake})
    _refused(replay, 401, "nonce.reused")
    # Unsupported TEE, unreadable evidence.
    _refused(Guest(stack.kbs(), stack.td).auth(tee="sgx"), 400, "kbs.tee_unsupported")
    nonce = guest.auth().json()["nonce"]
    unreadable = guest.attestation(nonce, {"quote": "%%%"})
    _refused(guest.http.post("/attest", json=unreadable), 400, "kbs.attestation_invalid")


def test_the_key_policy_decides(stack: Stack) -> None:
    other = Guest(stack.kbs("payments/other"), stack.td)  # same measurements, another workload
    assert other.handshake().status_code == 200
    _refused(other.resource(), 403, "release.workload_not_allowed")
    guest = Guest(stack.kbs(), stack.td)
    assert guest.handshake().status_code == 200
    _refused(guest.resource("default/key/missing"), 404, "tks.key_not_found")
    _refused(guest.resource("Default/KEY/x"), 400, "kbs.resource_invalid")
    _refused(Guest(stack.kbs("payments/unknown"), stack.td).handshake(), 401, "policy.unknown_workload")
