"""End to end with real processes on loopback: EPS (simulated TD) -> agent -> RAS -> token, then
`teeplane verify` against the same EPS; and genuine corpus quotes replayed through RAS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from processes import run_teeplane, service
from ras_testing import reference_for

from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.models import AttestRequest, WorkloadIdentity
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority, pem
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.token import verify_token
from teeplane.remote import RemoteError

ADMIN = "e2e-admin-token"
ISSUER, AUDIENCE = "https://ras.teeplane.local", "teeplane-tks"


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_simulated_td_attests_and_an_outsider_verifies(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    authority = SimulationAuthority.generate(now - timedelta(hours=1))
    authority.save(tmp_path / "sim")
    root = _write(tmp_path / "root.pem", pem(authority.root_cert))
    collateral = _write(tmp_path / "sim-collateral.json", bundle_json(authority, now - timedelta(minutes=5)))
    tokens = _write(tmp_path / "admin-tokens", ADMIN + "\n")
    td = boot_example_td(authority)
    reference = reference_for(td)
    reference_file = _write(tmp_path / "reference.json", reference.model_dump_json())

    eps_args = ["eps", "serve", "--provider", "simulated", "--sim-state", str(tmp_path / "sim"), "--baseline-id", "b1"]
    ras_args = ["ras", "serve", "--state", str(tmp_path / "ras"), "--admin-token-file", str(tokens),
                "--simulation-root", str(root), "--simulation-collateral", str(collateral)]  # fmt: skip
    with service("eps", eps_args, tmp_path) as eps_url, service("ras", ras_args, tmp_path) as ras_url:
        admin = RasClient(ras_url, admin_token=ADMIN)
        admin.put_reference_values("payments", "ledger", reference)
        admin.put_policy("payments", "ledger", AppraisalPolicy(allow_simulated=True))

        agent = run_teeplane("agent", "attest", "--ras", ras_url, "--eps", eps_url, "--namespace", "payments",
                             "--name", "ledger", "--pod", "ledger-0", "--json", cwd=tmp_path)  # fmt: skip
        assert agent.returncode == 0, agent.stderr
        result = json.loads(agent.stdout)
        claims = verify_token(result["token"], RasClient(ras_url).jwks(), audience=AUDIENCE, issuer=ISSUER,
                              now=datetime.now(UTC))  # fmt: skip
        submod = claims["submods"]["tdx"]
        assert claims["cnf"]["jwk"] == result["tee_pubkey"]
        assert submod["teeplane.measurements"]["mrtd"] == td.mrtd.hex()
        assert submod["teeplane.measurements"]["rtmr3"] == td.rtmrs[3].hex()
        assert submod["teeplane.workload"] == {"namespace": "payments", "name": "ledger", "pod": "ledger-0"}

        outsider = run_teeplane("verify", eps_url, "--root", str(root), "--allow-simulated",
                                "--reference", str(reference_file), "--json", cwd=tmp_path)  # fmt: skip
        assert outsider.returncode == 0, outsider.stdout + outsider.stderr
        verdict = json.loads(outsider.stdout)
        assert verdict["accepted"] is True and verdict["simulated"] is True
        assert {c["name"] for c in verdict["checks"] if c["ok"]} >= {"binding", "reference.values", "eventlog.rtmrs"}

        other = reference.model_copy(update={"mrtd": ["00" * 48]})
        wrong = _write(tmp_path / "wrong.json", other.model_dump_json())
        refused = run_teeplane("verify", eps_url, "--root", str(root), "--allow-simulated",
                               "--reference", str(wrong), "--json", cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 1
        assert "policy.measurement_mismatch" in {e["code"] for e in json.loads(refused.stdout)["errors"]}

        under_intel = run_teeplane("verify", eps_url, "--json", cwd=tmp_path)
        assert under_intel.returncode == 1
        assert json.loads(under_intel.stdout)["verified"] is False


GENUINE = [
    ("dcap-qvl/tdx_quote", "dcap-qvl/tdx_quote_collateral.json", "2025-06-25T00:00:00Z"),
    ("dcap-qvl/tdx-quote.from_hex.bin", "dcap-qvl/tdx_quote_collateral.json", "2025-06-25T00:00:00Z"),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("quote_path", "bundle_path", "at"), GENUINE, ids=[g[0] for g in GENUINE])
def test_genuine_quotes_replayed_through_ras(tmp_path: Path, corpus: Path, quote_path: str, bundle_path: str,
                                             at: str) -> None:  # fmt: skip
    """Recorded genuine evidence, replayed with its collateral at a fixed time, gets tokens whose
    claims are the quote's own (or is refused with the quote's real TCB verdict)."""
    tdx = corpus / "tdx"
    collateral_dir = tmp_path / "collateral"
    collateral_dir.mkdir()
    (collateral_dir / "bundle.json").symlink_to(tdx / bundle_path)  # read in place
    tokens = _write(tmp_path / "admin-tokens", ADMIN + "\n")
    quote = (tdx / quote_path).read_bytes()
    m = parse_quote(quote).body.measurements()
    ras_args = ["ras", "serve", "--state", str(tmp_path / "ras"), "--admin-token-file", str(tokens),
                "--collateral-dir", str(collateral_dir), "--at", at, "--replay-recorded-evidence"]  # fmt: skip
    with service("ras", ras_args, tmp_path) as ras_url:
        admin = RasClient(ras_url, admin_token=ADMIN)
        reference = ReferenceValues(tee="tdx", mrtd=[m["mrtd"]], rtmr0=[m["rtmr0"]], rtmr1=[m["rtmr1"]],
                                    rtmr2=[m["rtmr2"]], rtmr3=[m["rtmr3"]], mrconfigid=[m["mrconfigid"]])  # fmt: skip
        admin.put_reference_values("replay", "genuine", reference)
        client = RasClient(ras_url)
        request = AttestRequest(
            nonce=client.challenge().nonce,
            tee="tdx",
            evidence=b64url_encode(quote),
            runtime_data={"tee_pubkey": {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "B" * 43}},
            workload=WorkloadIdentity(namespace="replay", name="genuine"),
        )
        try:
            token = client.attest(request).token
        except RemoteError as refusal:
            assert quote_path == "dcap-qvl/tdx-quote.from_hex.bin"  # EXPECTED.md: TCB_NOT_SUPPORTED
            assert "tcb.not_supported" in {e["code"] for e in refusal.errors}
            return
        at_time = datetime.fromisoformat(at)
        claims = verify_token(token, client.jwks(), audience=AUDIENCE, issuer=ISSUER, now=at_time)
        submod = claims["submods"]["tdx"]
        assert submod["teeplane.measurements"] == m
        assert submod["teeplane.tcb-status"] == "UpToDate"
        assert submod["teeplane.simulated"] is False
        assert submod["teeplane.replayed"] is True
        assert submod["ear.status"] == "warning"
        assert submod["ear.trustworthiness-vector"]["hardware"] == 2
