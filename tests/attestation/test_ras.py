"""The Remote Attestation Service: tokens, every refusal with its code, replicas, restarts, admin."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ras_testing import NOW, WORKLOAD, Clock, Ras, evidence_request, make_ras, reference_for

from teeplane.attestation.binding import b64url_decode, b64url_encode
from teeplane.attestation.nonce import DEFAULT_NONCE_LIFETIME
from teeplane.attestation.ras.models import WorkloadIdentity
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.collateral import load_bundle, load_pcs_files
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.token import verify_token
from teeplane.remote import RemoteError

ISSUER, AUDIENCE = "https://ras.teeplane.local", "teeplane-tks"


def refusal(ras: Ras, request: Any) -> RemoteError:
    """The RemoteError RAS answers a request with."""
    with pytest.raises(RemoteError) as caught:
        ras.client().attest(request)
    return caught.value


def codes(error: RemoteError) -> dict[str, str | None]:
    """Each error code of a refusal with its claim path."""
    return {e["code"]: e.get("where") for e in error.errors}


def test_token_carries_measurements_workload_and_tee_key(ras: Ras, authority: SimulationAuthority) -> None:
    td = boot_example_td(authority)
    client = ras.client()
    request = evidence_request(td, client.challenge().nonce)
    issued = client.attest(request)
    claims = verify_token(issued.token, client.jwks(), audience=AUDIENCE, issuer=ISSUER, now=NOW)
    submod = claims["submods"]["tdx"]
    assert claims["cnf"]["jwk"] == request.runtime_data["tee_pubkey"]
    assert submod["teeplane.measurements"]["mrtd"] == td.mrtd.hex()
    assert submod["teeplane.measurements"]["rtmr3"] == td.rtmrs[3].hex()
    assert submod["teeplane.workload"] == {"namespace": "payments", "name": "ledger", "pod": "ledger-0"}
    assert submod["teeplane.baseline-id"] == "baseline-example-1"
    assert submod["teeplane.simulated"] is True
    assert submod["ear.status"] == "contraindicated"  # simulated hardware is never affirmed
    assert claims["exp"] - claims["iat"] == 300


def test_forged_nonce(ras: Ras, authority: SimulationAuthority) -> None:
    forged = b64url_encode(secrets.token_bytes(57))
    error = refusal(ras, evidence_request(boot_example_td(authority), forged))
    assert (error.code, error.http_status) == ("nonce.invalid", 403)


def test_reused_nonce(ras: Ras, authority: SimulationAuthority) -> None:
    td, client = boot_example_td(authority), ras.client()
    nonce = client.challenge().nonce
    client.attest(evidence_request(td, nonce))
    assert refusal(ras, evidence_request(td, nonce)).code == "nonce.reused"


def test_expired_nonce(ras: Ras, authority: SimulationAuthority) -> None:
    nonce = ras.client().challenge().nonce
    ras.clock.now = NOW + DEFAULT_NONCE_LIFETIME + timedelta(seconds=1)
    assert refusal(ras, evidence_request(boot_example_td(authority), nonce)).code == "nonce.expired"


def test_report_data_not_binding_the_tee_key(ras: Ras, authority: SimulationAuthority) -> None:
    td = boot_example_td(authority)
    other_key = {"tee_pubkey": {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "B" * 43}}
    request = evidence_request(td, ras.client().challenge().nonce, bound_runtime_data=other_key)
    error = refusal(ras, request)
    assert codes(error) == {"binding.report_data_mismatch": "evidence.report_data"}


def test_measurement_mismatch_names_the_claim(ras: Ras, authority: SimulationAuthority) -> None:
    td = boot_example_td(authority)
    td.extend_rtmr_event(3, b"an image nobody approved")
    error = refusal(ras, evidence_request(td, ras.client().challenge().nonce))
    assert codes(error).get("policy.measurement_mismatch") == "measurements.rtmr3"
    assert td.rtmrs[3].hex() in error.errors[0]["message"]


def test_debug_td(ras: Ras, authority: SimulationAuthority) -> None:
    td = boot_example_td(authority)
    debug = SimulatedTd(
        authority,
        mrtd=td.mrtd,
        mrconfigid=td.mrconfigid,
        rtmrs=td.rtmrs,
        td_attributes=bytes.fromhex("0100001000000000"),
    )
    debug.events.extend(td.events)
    error = refusal(ras, evidence_request(debug, ras.client().challenge().nonce))
    assert codes(error) == {"policy.debug_rejected": "debug"}


def test_simulated_evidence_under_a_production_policy(ras: Ras, authority: SimulationAuthority) -> None:
    ras.service.put_policy(WORKLOAD.key, AppraisalPolicy())
    error = refusal(ras, evidence_request(boot_example_td(authority), ras.client().challenge().nonce))
    assert codes(error) == {"policy.simulated_rejected": "simulated"}


def test_expired_collateral(tmp_path: Path, authority: SimulationAuthority) -> None:
    stale = bundle_json(authority, NOW - timedelta(days=40), NOW - timedelta(days=10))
    ras = make_ras(tmp_path / "ras.db", authority, collateral=stale)
    td = boot_example_td(authority)
    ras.service.put_reference_values(WORKLOAD.key, reference_for(td))
    ras.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    error = refusal(ras, evidence_request(td, ras.client().challenge().nonce))
    assert codes(error).get("collateral.expired") in {"tcbInfo", "tcb_info", "enclaveIdentity", "qe_identity"}


def test_unknown_workload(ras: Ras, authority: SimulationAuthority) -> None:
    stranger = WorkloadIdentity(namespace="payments", name="stranger")
    error = refusal(
        ras, evidence_request(boot_example_td(authority), ras.client().challenge().nonce, workload=stranger)
    )
    assert (error.code, error.http_status) == ("policy.unknown_workload", 403)


def test_tcb_status_not_accepted(tmp_path: Path, authority: SimulationAuthority, corpus: Path) -> None:
    """A genuine OutOfDate quote is refused for its TCB status (it also cannot bind our nonce)."""
    tdx = corpus / "tdx"
    clock = Clock(datetime(2025, 7, 10, tzinfo=UTC))
    ras = make_ras(tmp_path / "ras.db", authority, clock=clock)
    ras.service.collateral.add(load_bundle(_solana_bundle(tdx)))
    quote = (tdx / "automata/solana_quote_tdx.bin").read_bytes()
    measurements = parse_quote(quote).body.measurements()
    genuine = {"mrtd": [measurements["mrtd"]], "mrconfigid": [measurements["mrconfigid"]]}
    unconstrained: dict[str, list[str]] = {"rtmr1": [], "rtmr2": [], "rtmr3": []}
    ras.service.put_reference_values(
        WORKLOAD.key, reference_for(boot_example_td(authority), **genuine, **unconstrained)
    )
    request = evidence_request(boot_example_td(authority), ras.client().challenge().nonce)
    request = request.model_copy(update={"evidence": b64url_encode(quote), "event_log": None})
    found = codes(refusal(ras, request))
    assert found.get("policy.tcb_status_rejected") == "tcb_status"
    assert "binding.report_data_mismatch" in found


def test_replicas_share_nonces_and_refuse_a_second_use(tmp_path: Path, authority: SimulationAuthority) -> None:
    a = make_ras(tmp_path / "shared.db", authority)
    b = make_ras(tmp_path / "shared.db", authority)
    td = boot_example_td(authority)
    a.service.put_reference_values(WORKLOAD.key, reference_for(td))
    a.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    nonce = a.client().challenge().nonce
    token = b.client().attest(evidence_request(td, nonce)).token
    claims = verify_token(token, a.client().jwks(), audience=AUDIENCE, issuer=ISSUER, now=NOW)
    assert claims["submods"]["tdx"]["teeplane.workload"]["name"] == "ledger"
    assert refusal(a, evidence_request(td, nonce)).code == "nonce.reused"
    assert refusal(b, evidence_request(td, nonce)).code == "nonce.reused"


def test_restart_keeps_reference_values_policies_and_keys(tmp_path: Path, authority: SimulationAuthority) -> None:
    first = make_ras(tmp_path / "ras.db", authority)
    td = boot_example_td(authority)
    admin = first.client(admin=True)
    admin.put_reference_values(WORKLOAD.namespace, WORKLOAD.name, reference_for(td))
    admin.put_policy(
        WORKLOAD.namespace, WORKLOAD.name, AppraisalPolicy(allow_simulated=True, token_lifetime_seconds=60)
    )
    token = first.client().attest(evidence_request(td, first.client().challenge().nonce)).token
    jwks_before = first.client().jwks()
    first.service.store.close()

    second = make_ras(tmp_path / "ras.db", authority)
    assert second.client().jwks() == jwks_before
    verify_token(token, second.client().jwks(), audience=AUDIENCE, issuer=ISSUER, now=NOW)
    assert second.service.policy(WORKLOAD.key).token_lifetime_seconds == 60
    again = second.client().attest(evidence_request(td, second.client().challenge().nonce)).token
    claims = verify_token(again, second.client().jwks(), audience=AUDIENCE, issuer=ISSUER, now=NOW)
    assert claims["exp"] - claims["iat"] == 60


def test_admin_api_needs_a_token(ras: Ras) -> None:
    http = TestClient(ras.app)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        response = http.get("/v1/reference-values", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "auth.admin_required"
    listed = http.get("/v1/reference-values", headers={"Authorization": "Bearer test-admin-token"})
    assert listed.json() == {"workloads": ["payments/ledger"]}


def test_admin_crud_and_validation(ras: Ras, authority: SimulationAuthority) -> None:
    http = TestClient(ras.app, headers={"Authorization": "Bearer test-admin-token"})
    body = reference_for(boot_example_td(authority)).model_dump(mode="json")
    assert http.put("/v1/reference-values/payments/other", json=body).status_code == 200
    assert http.get("/v1/reference-values/payments/other").json()["mrtd"] == body["mrtd"]
    bad = http.put("/v1/reference-values/payments/other", json=body | {"mrtd": ["00"]})
    assert (bad.status_code, bad.json()["code"]) == (422, "request.invalid")
    assert http.delete("/v1/reference-values/payments/other").status_code == 204
    missing = http.get("/v1/reference-values/payments/other")
    assert (missing.status_code, missing.json()["code"]) == (404, "request.not_found")


def test_refusal_is_problem_json_with_every_error(ras: Ras, authority: SimulationAuthority) -> None:
    ras.service.put_policy(WORKLOAD.key, AppraisalPolicy())
    td = boot_example_td(authority)
    td.extend_rtmr_event(2, b"unexpected")
    request = evidence_request(td, ras.client().challenge().nonce)
    response = TestClient(ras.app).post("/v1/attest", json=request.model_dump(mode="json"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].startswith("https://teeplane.io/problems/")
    assert {e["code"] for e in body["errors"]} == {"policy.simulated_rejected", "policy.measurement_mismatch"}


def test_metrics_count_results(ras: Ras, authority: SimulationAuthority) -> None:
    td, client = boot_example_td(authority), ras.client()
    client.attest(evidence_request(td, client.challenge().nonce))
    refusal(ras, evidence_request(td, b64url_encode(secrets.token_bytes(57))))
    text = TestClient(ras.app).get("/metrics").text
    assert 'teeplane_ras_attestations_total{code="",result="accepted"} 1.0' in text
    assert 'teeplane_ras_attestations_total{code="nonce.invalid",result="refused"} 1.0' in text
    assert "teeplane_ras_attestation_seconds_count 2.0" in text


def test_rotation_keeps_old_tokens_verifiable(ras: Ras, authority: SimulationAuthority) -> None:
    td, client = boot_example_td(authority), ras.client()
    old = client.attest(evidence_request(td, client.challenge().nonce)).token
    new_kid = ras.client(admin=True)._call("POST", "/v1/admin/keys/rotate").json()["kid"]
    jwks = client.jwks()
    assert new_kid in {k["kid"] for k in jwks["keys"]} and len(jwks["keys"]) == 2
    verify_token(old, jwks, audience=AUDIENCE, issuer=ISSUER, now=NOW)
    fresh = client.attest(evidence_request(td, client.challenge().nonce)).token
    header = json.loads(b64url_decode(fresh.split(".")[0], "header"))
    assert header["kid"] == new_kid
    verify_token(fresh, jwks, audience=AUDIENCE, issuer=ISSUER, now=NOW)


def _solana_bundle(tdx: Path) -> bytes:
    """The automata PCS files of 2025-07 as one collateral bundle."""
    files = load_pcs_files(
        (tdx / "automata/solana_tcb_info_v3_with_tdx_module.json").read_bytes(),
        (tdx / "automata/solana_qe_identity.json").read_bytes(),
        (tdx / "automata/solana_signing.pem").read_bytes(),
        (tdx / "automata/solana_pck_platform_crl.der").read_bytes(),
        (tdx / "automata/solana_intel_root_ca_crl.der").read_bytes(),
    )
    assert files.pck_crl is not None and files.root_ca_crl is not None
    return json.dumps(
        {
            "tcb_info": files.tcb_info.raw.decode(),
            "tcb_info_signature": files.tcb_info.signature.hex(),
            "tcb_info_issuer_chain": files.tcb_info_chain.decode(),
            "qe_identity": files.qe_identity.raw.decode(),
            "qe_identity_signature": files.qe_identity.signature.hex(),
            "qe_identity_issuer_chain": files.qe_identity_chain.decode(),
            "pck_crl": files.pck_crl.hex(),
            "root_ca_crl": files.root_ca_crl.hex(),
        }
    ).encode()


@pytest.mark.corpus
def test_snp_report_replayed_through_ras(tmp_path: Path, authority: SimulationAuthority, corpus: Path) -> None:
    """A genuine SEV-SNP report with its VCEK; the AMD chain comes from RAS's configuration."""
    snp = corpus / "snp/trustee"
    report = (snp / "test-report.bin").read_bytes()
    chain = (snp / "milan_ask_ark_asvk.pem").read_bytes()
    clock = Clock(datetime(2025, 1, 1, tzinfo=UTC))
    ras = make_ras(tmp_path / "ras.db", authority, clock=clock, amd_chains=(chain,), replay_recorded_evidence=True)
    measurement = report[0x90:0xC0].hex()
    reference = ReferenceValues(tee="snp", measurement=[measurement], host_data=[report[0xC0:0xE0].hex()])
    ras.service.put_reference_values(WORKLOAD.key, reference)
    client = ras.client()
    request = evidence_request(boot_example_td(authority), client.challenge().nonce).model_copy(
        update={"tee": "snp", "evidence": b64url_encode(report), "event_log": None,
                "vcek": b64url_encode((snp / "test-vcek.der").read_bytes())}
    )  # fmt: skip
    claims = verify_token(client.attest(request).token, client.jwks(), audience=AUDIENCE, issuer=ISSUER, now=clock.now)
    submod = claims["submods"]["snp"]
    assert submod["teeplane.measurements"]["measurement"] == measurement
    assert submod["teeplane.replayed"] is True
    no_vcek = evidence_request(boot_example_td(authority), client.challenge().nonce).model_copy(
        update={"tee": "snp", "evidence": b64url_encode(report), "event_log": None}
    )
    error = refusal(ras, no_vcek)
    assert (error.code, error.http_status) == ("snp.certificate_malformed", 400)


def test_expired_nonces_are_purged_from_the_replay_cache(ras: Ras, authority: SimulationAuthority) -> None:
    td, client = boot_example_td(authority), ras.client()
    used = client.challenge().nonce
    client.attest(evidence_request(td, used))
    count = "SELECT COUNT(*) FROM nonce_claims"
    assert ras.service.store.upkeep.purge() == 0  # not expired yet: still refused as reused
    assert refusal(ras, evidence_request(td, used)).code == "nonce.reused"
    ras.clock.now = NOW + DEFAULT_NONCE_LIFETIME + timedelta(minutes=2)
    deadline = time.monotonic() + 10  # the upkeep thread purges on its own, about once a second
    while ras.service.store._db.execute(count).fetchone()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ras.service.store._db.execute(count).fetchone()[0] == 0
    assert refusal(ras, evidence_request(td, used)).code == "nonce.expired"


def test_unregistered_workload_is_refused(ras: Ras, authority: SimulationAuthority) -> None:
    """What the operator's finalizer does on delete: afterwards the workload gets no token."""
    ras.client(admin=True).delete_reference_values(WORKLOAD.namespace, WORKLOAD.name)
    error = refusal(ras, evidence_request(boot_example_td(authority), ras.client().challenge().nonce))
    assert error.code == "policy.unknown_workload"
    with pytest.raises(RemoteError) as missing:
        ras.client(admin=True).delete_reference_values(WORKLOAD.namespace, WORKLOAD.name)
    assert (missing.value.code, missing.value.http_status) == ("request.not_found", 404)
