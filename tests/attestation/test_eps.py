"""The in-pod evidence side: evidence providers and the Evidence Provision Service.

configfs-tsm is driven through a test kernel (`FakeTsm`) over a real directory tree: it gives
entries the attributes configfs creates, counts writes in `generation`, answers `outblob` with a
simulated TDX quote of the written `inblob`, and can play another writer racing ours.
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from processes import free_port, service

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.binding import b64url_decode, b64url_encode, check_binding, report_data_for
from teeplane.attestation.eps.app import create_eps_app
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.eps.models import EvidenceResponse
from teeplane.attestation.eps.provider import (
    ConfigfsTsmProvider,
    Evidence,
    EvidenceProviderError,
    OsConfigfsOps,
    SimulatedTdxProvider,
)
from teeplane.attestation.errors import EvidenceFormatError
from teeplane.attestation.eventlog import parse_event_log, replay_rtmrs
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.eventlog import EV_EVENT_TAG, EV_IPL, write_event_log
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import TrustAnchor, anchor_from_pem
from teeplane.remote import RemoteError

NOW = datetime.now(UTC)
AT = NOW + timedelta(minutes=1)
ALLOW_SIM = Policy(allow_simulated=True)
REPORT_DATA = hashlib.sha512(b"nonce || runtime data").digest()
VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
CRL_GUID = uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea")
STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 10.0


class FakeTsm(OsConfigfsOps):
    """configfs-tsm semantics over a plain directory: the test's TEE kernel.

    `races` is how many of our `inblob` writes another writer overwrites at once; `fail` names
    an attribute whose reads fail with EIO.
    """

    def __init__(
        self,
        td: SimulatedTd,
        *,
        provider: str = "tdx_guest",
        auxblob: bytes | None = None,
        races: int = 0,
        fail: str | None = None,
    ) -> None:
        self.td = td
        self.provider = provider
        self.auxblob = auxblob
        self.races = races
        self.fail = fail
        self.entries = 0

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        self.entries += 1
        (path / "generation").write_text("0\n")
        (path / "provider").write_text(self.provider + "\n")
        if self.auxblob is not None:
            (path / "auxblob").write_bytes(self.auxblob)

    def rmdir(self, path: Path) -> None:
        for attribute in path.iterdir():
            attribute.unlink()
        super().rmdir(path)

    def write(self, path: Path, data: bytes) -> None:
        self._write(path, data)
        if path.name == "inblob" and self.races:
            self.races -= 1
            self._write(path, b"another writer's report data")

    def read(self, path: Path) -> bytes:
        if path.name == self.fail:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if path.name == "outblob":
            inblob = super().read(path.parent / "inblob")
            return self.td.quote(inblob) if self.provider == "tdx_guest" else b"SNP report over " + inblob
        return super().read(path)

    def _write(self, path: Path, data: bytes) -> None:
        super().write(path, data)
        generation = path.parent / "generation"
        generation.write_text(f"{int(generation.read_text()) + 1}\n")


@pytest.fixture(scope="module")
def authority() -> SimulationAuthority:
    return SimulationAuthority.generate(NOW)


@pytest.fixture(scope="module")
def collateral(authority: SimulationAuthority) -> bytes:
    return bundle_json(authority, NOW)


@pytest.fixture
def td(authority: SimulationAuthority) -> SimulatedTd:
    td = boot_example_td(authority)
    td.extend_rtmr(3, hashlib.sha384(b"a digest without its event").digest())
    return td


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    return root


def appraise(evidence: bytes, authority: SimulationAuthority, collateral: bytes, event_log: bytes | None) -> Appraisal:
    return appraise_quote(
        parse_quote(evidence),
        load_bundle(collateral),
        TrustAnchor(authority.root_cert, simulated=True),
        AT,
        ALLOW_SIM,
        event_log=parse_event_log(event_log) if event_log is not None else None,
    )


def cert_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """A SEV-SNP certificate table: (GUID, offset, length) entries, a zero entry, the certificates."""
    offset = 24 * (len(entries) + 1)
    head, body = b"", b""
    for guid, cert in entries:
        head += guid.bytes + struct.pack("<II", offset + len(body), len(cert))
        body += cert
    return head + bytes(24) + body


# configfs-tsm


def test_configfs_quote_binds_report_data_and_entry_is_removed(
    root: Path, td: SimulatedTd, authority: SimulationAuthority, collateral: bytes, tmp_path: Path
) -> None:
    ccel = tmp_path / "CCEL"
    ccel.write_bytes(write_event_log(td.events) + b"\xff" * 64)
    tsm = FakeTsm(td)
    provider = ConfigfsTsmProvider(root, ccel, ops=tsm)

    evidence = provider.evidence(REPORT_DATA)

    assert (provider.tee, provider.simulated) == ("tdx", False)
    assert evidence.tee == "tdx" and not evidence.simulated and evidence.collateral is None
    assert parse_quote(evidence.evidence).body.report_data == REPORT_DATA
    assert evidence.event_log == ccel.read_bytes()
    assert appraise(evidence.evidence, authority, collateral, evidence.event_log).accepted
    assert tsm.entries == 2  # one to learn the provider, one for the report
    assert list(root.iterdir()) == []


def test_configfs_retries_on_a_fresh_entry_after_a_race(root: Path, td: SimulatedTd) -> None:
    tsm = FakeTsm(td, races=1)
    evidence = ConfigfsTsmProvider(root, None, ops=tsm).evidence(REPORT_DATA)
    assert parse_quote(evidence.evidence).body.report_data == REPORT_DATA
    assert evidence.event_log is None
    assert tsm.entries == 2
    assert list(root.iterdir()) == []


def test_configfs_persistent_race_is_a_typed_error(root: Path, td: SimulatedTd) -> None:
    tsm = FakeTsm(td, races=100)
    with pytest.raises(EvidenceProviderError) as caught:
        ConfigfsTsmProvider(root, None, attempts=3, ops=tsm).evidence(REPORT_DATA)
    assert caught.value.code == "provider.generation_conflict"
    assert caught.value.http_status == 503
    assert tsm.entries == 3
    assert list(root.iterdir()) == []


def test_configfs_missing_root_is_a_typed_error(tmp_path: Path, td: SimulatedTd) -> None:
    provider = ConfigfsTsmProvider(tmp_path / "no-configfs", None, ops=FakeTsm(td))
    for call in (lambda: provider.tee, lambda: provider.evidence(REPORT_DATA)):
        with pytest.raises(EvidenceProviderError) as caught:
            call()
        assert caught.value.code == "provider.unavailable"
        assert caught.value.where == str(tmp_path / "no-configfs")


def test_configfs_io_error_is_typed_and_the_entry_still_removed(root: Path, td: SimulatedTd) -> None:
    with pytest.raises(EvidenceProviderError) as caught:
        ConfigfsTsmProvider(root, None, ops=FakeTsm(td, fail="outblob")).evidence(REPORT_DATA)
    assert caught.value.code == "provider.unavailable"
    assert caught.value.where is not None and caught.value.where.endswith("/outblob")
    assert list(root.iterdir()) == []


def test_configfs_unknown_provider_is_refused(root: Path, td: SimulatedTd) -> None:
    with pytest.raises(EvidenceProviderError) as caught:
        ConfigfsTsmProvider(root, None, ops=FakeTsm(td, provider="arm_cca_guest")).evidence(REPORT_DATA)
    assert caught.value.code == "provider.unsupported"


def test_configfs_sev_reads_certificates_from_auxblob_leaf_first(root: Path, td: SimulatedTd) -> None:
    table = cert_table([(ARK_GUID, b"ark der"), (CRL_GUID, b"crl"), (VCEK_GUID, b"vcek der")])
    tsm = FakeTsm(td, provider="sev_guest", auxblob=table)
    provider = ConfigfsTsmProvider(root, None, privlevel=0, ops=tsm)

    evidence = provider.evidence(REPORT_DATA)

    assert provider.tee == "snp"
    assert evidence == Evidence("snp", b"SNP report over " + REPORT_DATA, certificates=(b"vcek der", b"ark der"))
    assert list(root.iterdir()) == []


def test_configfs_sev_without_auxblob_has_no_certificates(root: Path, td: SimulatedTd) -> None:
    evidence = ConfigfsTsmProvider(root, None, ops=FakeTsm(td, provider="sev_guest")).evidence(REPORT_DATA)
    assert evidence.certificates == ()


def test_configfs_truncated_certificate_table_is_malformed(root: Path, td: SimulatedTd) -> None:
    table = cert_table([(VCEK_GUID, b"vcek der")])[:30]
    with pytest.raises(EvidenceFormatError) as caught:
        ConfigfsTsmProvider(root, None, ops=FakeTsm(td, provider="sev_guest", auxblob=table)).evidence(REPORT_DATA)
    assert caught.value.code == "snp.certificate_malformed"


def test_configfs_rejects_bad_arguments(root: Path, td: SimulatedTd) -> None:
    with pytest.raises(ValueError, match="privlevel"):
        ConfigfsTsmProvider(root, privlevel=4)
    with pytest.raises(ValueError, match="64 bytes"):
        ConfigfsTsmProvider(root, None, ops=FakeTsm(td)).evidence(bytes(65))


# the simulated provider and its event log


def test_simulated_evidence_verifies_binds_and_replays(
    td: SimulatedTd, authority: SimulationAuthority, collateral: bytes
) -> None:
    nonce, runtime_data = os.urandom(32), {"tee_pubkey": {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}}
    provider = SimulatedTdxProvider(td, collateral)

    evidence = provider.evidence(report_data_for(nonce, runtime_data))

    assert (provider.tee, provider.simulated, evidence.simulated) == ("tdx", True, True)
    assert evidence.collateral == collateral and evidence.event_log is not None
    appraisal = appraise(evidence.evidence, authority, collateral, evidence.event_log)
    assert appraisal.accepted and appraisal.simulated, appraisal.errors
    assert appraisal.eventlog is not None and appraisal.eventlog["events"] == len(td.events)
    check_binding(parse_quote(evidence.evidence).body.report_data, nonce, runtime_data)
    assert replay_rtmrs(parse_event_log(evidence.event_log)) == td.rtmrs


def test_sim_event_log_records_each_extension(td: SimulatedTd) -> None:
    log = parse_event_log(write_event_log(td.events))
    assert log.digest_sizes == {0x000C: 48}
    assert [(e.index, e.event_type, e.data) for e in log.events] == [
        (event.rtmr + 1, EV_IPL if event.data else EV_EVENT_TAG, event.data) for event in td.events
    ]
    assert [e.digests[0x000C] for e in log.events] == [event.digest for event in td.events]
    assert log.events[-1].event_type == EV_EVENT_TAG


def test_sim_event_log_keeps_a_recorded_event_type(td: SimulatedTd) -> None:
    ev_efi_action = 0x80000007
    action = b"Exit Boot Services Invocation"
    td.extend_rtmr(1, hashlib.sha384(action).digest(), data=action, event_type=ev_efi_action)
    event = parse_event_log(write_event_log(td.events)).events[-1]
    assert (event.index, event.event_type, event.data) == (2, ev_efi_action, action)
    assert replay_rtmrs(parse_event_log(write_event_log(td.events))) == td.rtmrs


# the EPS application


@pytest.fixture
def eps(td: SimulatedTd, collateral: bytes) -> TestClient:
    app = create_eps_app(
        SimulatedTdxProvider(td, collateral),
        baseline_id="sha256:baseline",
        log_proof={"index": 7},
        workload={"namespace": "team", "name": "app"},
    )
    return TestClient(app)


def test_eps_evidence_binds_its_own_key_by_default(
    eps: TestClient, authority: SimulationAuthority, collateral: bytes
) -> None:
    nonce = os.urandom(32)
    response = eps.post("/v1/evidence", json={"nonce": b64url_encode(nonce)})
    assert response.status_code == 200, response.text
    body = EvidenceResponse.model_validate(response.json())

    assert body.tee == "tdx" and body.simulated and body.certificates == []
    assert (body.baseline_id, body.log_proof, body.workload) == (
        "sha256:baseline",
        {"index": 7},
        {"namespace": "team", "name": "app"},
    )
    assert set(body.runtime_data) == {"tee_pubkey"}
    assert body.runtime_data["tee_pubkey"]["kty"] == "EC" and "d" not in body.runtime_data["tee_pubkey"]
    quote = b64url_decode(body.evidence, "evidence")
    check_binding(parse_quote(quote).body.report_data, nonce, body.runtime_data)
    assert body.collateral is not None and body.event_log is not None
    assert b64url_decode(body.collateral, "collateral") == collateral
    assert appraise(quote, authority, collateral, b64url_decode(body.event_log, "event_log")).accepted
    second = eps.post("/v1/evidence", json={"nonce": b64url_encode(nonce)}).json()
    assert second["runtime_data"] == body.runtime_data


def test_eps_evidence_binds_the_callers_runtime_data(eps: TestClient) -> None:
    nonce, runtime_data = os.urandom(16), {"tee_pubkey": {"kty": "EC", "crv": "P-256"}, "extra": [1, "two"]}
    body = EpsClient(http=eps).evidence(nonce, runtime_data)
    assert body.runtime_data == runtime_data
    check_binding(parse_quote(b64url_decode(body.evidence, "evidence")).body.report_data, nonce, runtime_data)


@pytest.mark.parametrize(
    "body",
    [
        {"nonce": b64url_encode(bytes(15))},
        {"nonce": b64url_encode(bytes(65))},
        {"nonce": "not base64url!"},
        {"nonce": "A" * 25},  # a length no base64 has
        {},
        {"nonce": b64url_encode(bytes(32)), "surprise": 1},
    ],
)
def test_eps_bad_request_is_422_problem_json(eps: TestClient, body: dict[str, Any]) -> None:
    response = eps.post("/v1/evidence", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "request.invalid" and problem["status"] == 422
    assert problem["errors"] and problem["errors"][0]["where"].startswith("body")


def test_eps_padded_nonce_is_accepted(eps: TestClient) -> None:
    padded = b64url_encode(bytes(16)) + "=="
    assert eps.post("/v1/evidence", json={"nonce": padded}).status_code == 200


def test_eps_discovery_and_health(eps: TestClient) -> None:
    assert eps.get("/.well-known/teeplane").json() == {
        "tee": "tdx",
        "simulated": True,
        "baseline_id": "sha256:baseline",
        "endpoints": {"evidence": "/v1/evidence"},
    }
    assert EpsClient(http=eps).discovery().tee == "tdx"
    assert eps.get("/healthz").json() == {"status": "ok"}
    assert eps.get("/readyz").status_code == 200


def test_eps_openapi_names_the_models(eps: TestClient) -> None:
    schemas = eps.get("/openapi.json").json()["components"]["schemas"]
    assert {"EvidenceRequest", "EvidenceResponse", "Discovery"} <= set(schemas)
    assert "nonce" in schemas["EvidenceRequest"]["required"]


def test_eps_provider_failure_is_503_problem_and_a_typed_client_error(root: Path, td: SimulatedTd) -> None:
    app = create_eps_app(ConfigfsTsmProvider(root, None, ops=FakeTsm(td, fail="outblob")))
    http = TestClient(app)
    response = http.post("/v1/evidence", json={"nonce": b64url_encode(bytes(32))})
    assert response.status_code == 503
    assert response.json()["code"] == "provider.unavailable"
    with pytest.raises(RemoteError) as caught:
        EpsClient(http=http).evidence(bytes(32))
    assert (caught.value.code, caught.value.http_status) == ("provider.unavailable", 503)


def test_eps_client_refuses_a_bad_nonce_locally_and_reports_unreachable(eps: TestClient) -> None:
    with pytest.raises(EvidenceFormatError) as bad:
        EpsClient(http=eps).evidence(b"short")
    assert bad.value.code == "nonce.invalid"
    with pytest.raises(RemoteError) as unreachable:
        EpsClient(f"http://127.0.0.1:{free_port()}", timeout=2.0).evidence(bytes(32))
    assert unreachable.value.code == "service.unreachable"


# `teeplane eps serve`, for real


def test_eps_serve_answers_with_evidence_that_verifies(tmp_path: Path) -> None:
    state = tmp_path / "sim"
    options = ["--provider", "simulated", "--sim-state", str(state), "--baseline-id", "bl-1"]
    nonce = os.urandom(32)
    with service("eps", ["eps", "serve", *options], tmp_path) as base_url:
        client = EpsClient(base_url, timeout=10.0)
        body = client.evidence(nonce)
        client.close()

    assert body.baseline_id == "bl-1" and body.simulated and body.collateral and body.event_log
    quote = parse_quote(b64url_decode(body.evidence, "evidence"))
    check_binding(quote.body.report_data, nonce, body.runtime_data)
    appraisal = appraise_quote(
        quote,
        load_bundle(b64url_decode(body.collateral, "collateral")),
        anchor_from_pem((state / "root.pem").read_bytes(), simulated=True),
        datetime.now(UTC) + timedelta(seconds=1),
        ALLOW_SIM,
        event_log=parse_event_log(b64url_decode(body.event_log, "event_log")),
    )
    assert appraisal.accepted, [str(e) for e in appraisal.errors]
