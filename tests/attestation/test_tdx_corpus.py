"""Every case of ../shared/testdata/attestation/tdx/EXPECTED.md, through `teeplane attest verify-quote`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner

from teeplane.cli import app

pytestmark = pytest.mark.corpus

SOLANA_FILES = (
    "--tcb-info", "automata/solana_tcb_info_v3_with_tdx_module.json",
    "--qe-identity", "automata/solana_qe_identity.json",
    "--tcb-signing-chain", "automata/solana_signing.pem",
    "--pck-crl", "automata/solana_pck_platform_crl.der",
    "--root-ca-crl", "automata/solana_intel_root_ca_crl.der",
)  # fmt: skip
GO_TDX_GUEST_FILES = (
    "--tcb-info", "go-tdx-guest/sample_tcbInfo_response",
    "--qe-identity", "go-tdx-guest/sample_qeIdentity_response",
    "--tcb-signing-chain", "go-tdx-guest/tcbInfoIssuerChain.pem",
    "--pck-crl", "go-tdx-guest/pckcrl",
    "--root-ca-crl", "go-tdx-guest/rootcrl.der",
)  # fmt: skip
CRYPTO_CHECKS = ("pck.chain", "qe.report_signature", "qe.report_data", "quote.signature")
NO_COLLATERAL_ERRORS = {"collateral.missing"}
NOT_SUPPORTED = {"tcb.not_supported", "policy.tcb_status_rejected"}


@dataclass(frozen=True)
class Case:
    """One row of EXPECTED.md: the quote, its collateral options, the time and the verdict."""

    quote: str
    options: tuple[str, ...]
    at: str
    verified: bool
    tcb_status: str | None
    errors: set[str] = field(default_factory=set)
    fmspc: str | None = None
    debug: bool = False


CASES = [
    Case("dcap-qvl/tdx_quote", ("--collateral", "dcap-qvl/tdx_quote_collateral.json"),
         "2025-06-25T00:00:00Z", True, "UpToDate", fmspc="b0c06f000000"),
    Case("dcap-qvl/tdx_quote_outdated", ("--collateral", "dcap-qvl/tdx_quote_outdated_collateral.json"),
         "2026-02-25T00:00:00Z", False, "TCB_NOT_SUPPORTED", NOT_SUPPORTED),
    Case("automata/solana_quote_tdx.bin", SOLANA_FILES, "2025-07-10T00:00:00Z", True, "OutOfDate",
         {"policy.tcb_status_rejected"}, fmspc="00806f050000"),
    Case("go-tdx-guest/ccel/cos-113-tdx-quote.dat", SOLANA_FILES, "2025-07-10T00:00:00Z", True, "UpToDate"),
    Case("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", GO_TDX_GUEST_FILES, "2023-06-20T00:00:00Z", False,
         "TCB_NOT_SUPPORTED", NOT_SUPPORTED),
    Case("go-tdx-guest/quote_v5_sample.dat",
         ("--tcb-info", "go-tdx-guest/sample_tcbinfo_response_v5",
          "--qe-identity", "go-tdx-guest/sample_qeIdentity_response",
          "--tcb-signing-chain", "dcap-qvl/tcb_info_issuer_chain_2025.pem"),
         "2026-02-10T00:00:00Z", False, "UpToDate", {"collateral.expired", "collateral.missing"}),
    Case("trustee/tdx_quote_6.dat",
         ("--tcb-info", "trustee/tcbInfo.json", "--qe-identity", "trustee/enclaveIdentity.json",
          "--tcb-signing-chain", "dcap-qvl/tcb_info_issuer_chain_2025.pem"),
         "2025-10-29T00:00:00Z", False, "OutOfDate", {"collateral.missing", "policy.tcb_status_rejected"}),
    Case("trustee/tdx_quote_4.dat", (), "2025-10-29T00:00:00Z", False, None,
         NO_COLLATERAL_ERRORS | {"policy.debug_rejected"}, debug=True),
    Case("dcap-qvl/tdx-quote.from_hex.bin", ("--collateral", "dcap-qvl/tdx_quote_collateral.json"),
         "2025-06-25T00:00:00Z", False, "TCB_NOT_SUPPORTED", NOT_SUPPORTED),
    *(
        Case(q, (), "2025-10-29T00:00:00Z", False, None, NO_COLLATERAL_ERRORS)
        for q in (
            "flashtestations/0x12c14e56d585Dcf3B36f37476c00E78bA9363742_quote.bin",
            "flashtestations/0x12c14e56d585Dcf3B36f37476c00E78bA9363742_quote2.bin",
            "flashtestations/0xc200F222043C5BC6c70aA6e35f5c5fDE079f3A04_quote.bin",
            "dcap-qvl/quote-from-tappd.from_hex.bin",
            "trustee/tdx_quote_5.dat",
        )
    ),
]  # fmt: skip


def run_cli(*args: str) -> tuple[int, dict[str, Any]]:
    """Run the CLI with --json and return (exit code, decoded output)."""
    result = CliRunner().invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def quote_args(tdx: Path, case: Case) -> list[str]:
    """CLI arguments for a case, corpus paths made absolute."""
    options = [str(tdx / o) if "/" in o else o for o in case.options]
    return ["attest", "verify-quote", str(tdx / case.quote), *options, "--at", case.at]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.quote)
def test_expected_verdict(corpus: Path, case: Case) -> None:
    code, out = run_cli(*quote_args(corpus / "tdx", case))
    assert out["verified"] is case.verified
    assert out["tcb_status"] == case.tcb_status
    assert {e["code"] for e in out["errors"]} == case.errors
    assert out["accepted"] is (case.verified and not case.errors)
    assert code == (0 if out["accepted"] else 1)
    assert out["debug"] is case.debug
    assert out["simulated"] is False
    assert out["tee"] == "tdx"
    if case.fmspc:
        assert out["fmspc"] == case.fmspc
    checks = {c["name"]: c["ok"] for c in out["checks"]}
    for name in CRYPTO_CHECKS:  # every genuine quote passes the four cryptographic checks
        assert checks[name] is True, name


def test_quote_fields_are_exposed(corpus: Path) -> None:
    raw = (corpus / "tdx/dcap-qvl/tdx_quote").read_bytes()
    _, out = run_cli(*quote_args(corpus / "tdx", CASES[0]))
    body = raw[48 : 48 + 584]
    m = out["measurements"]
    assert out["quote_version"] == 4
    assert m["mrtd"] == body[136:184].hex()
    assert m["rtmr0"] == body[328:376].hex()
    assert m["rtmr3"] == body[472:520].hex()
    assert m["report_data"] == body[520:584].hex()
    assert m["mrconfigid"] == body[184:232].hex()


def test_v5_quote_reports_version_and_body(corpus: Path) -> None:
    code, out = run_cli("attest", "verify-quote", str(corpus / "tdx/trustee/tdx_quote_5.dat"))
    assert code == 1
    assert out["quote_version"] == 5
    assert "mrservicetd" in out["measurements"]


def test_ccel_replays_rtmrs_exactly(corpus: Path) -> None:
    case = CASES[3]
    args = [
        *quote_args(corpus / "tdx", case),
        "--eventlog",
        str(corpus / "tdx/go-tdx-guest/ccel/ccel_data.dat"),
    ]
    code, out = run_cli(*args)
    assert code == 0
    assert out["eventlog"]["replayed"] is True
    assert all(out["eventlog"][f"rtmr{i}"]["match"] for i in range(4))


def test_foreign_event_log_is_refused(corpus: Path) -> None:
    """A genuine log that belongs to another TD does not replay this quote's RTMRs."""
    args = [*quote_args(corpus / "tdx", CASES[0]), "--eventlog", str(corpus / "tdx/trustee/CCEL_data")]
    code, out = run_cli(*args)
    assert code == 1
    assert "eventlog.rtmr_mismatch" in {e["code"] for e in out["errors"]}


def test_accept_tcb_and_allow_debug_widen_the_policy(corpus: Path) -> None:
    tdx = corpus / "tdx"
    code, out = run_cli(*quote_args(tdx, CASES[2]), "--accept-tcb", "UpToDate,OutOfDate")
    assert (code, out["accepted"]) == (0, True)
    code, out = run_cli("attest", "verify-quote", str(tdx / "trustee/tdx_quote_4.dat"), "--allow-debug")
    assert {e["code"] for e in out["errors"]} == NO_COLLATERAL_ERRORS


def test_intel_sample_is_refused_under_the_intel_root(corpus: Path) -> None:
    qvl = corpus / "tdx/intel-qvl-sampledata"
    code, out = run_cli(
        "attest", "verify-quote", str(qvl / "quote.dat"),
        "--tcb-info", str(qvl / "tcbInfo.json"), "--qe-identity", str(qvl / "qeIdentity.json"),
        "--tcb-signing-chain", str(qvl / "tcbSignChain.pem"),
        "--pck-crl", str(qvl / "intermediateCaCrl.der"), "--root-ca-crl", str(qvl / "rootCaCrl.der"),
    )  # fmt: skip
    assert code == 1
    assert out["verified"] is False
    codes = {e["code"] for e in out["errors"]}
    assert codes & {"cert.untrusted_root", "cert.chain_invalid"}
    checks = {c["name"]: c["ok"] for c in out["checks"]}
    assert checks["pck.chain"] is False
    assert checks["collateral.tcb_signing_chain"] is False


WITH_FULL_COLLATERAL = [c for c in CASES if "--collateral" in c.options or c.options == SOLANA_FILES]


@pytest.mark.parametrize("case", WITH_FULL_COLLATERAL, ids=lambda c: c.quote)
def test_one_second_after_next_update_is_refused(corpus: Path, case: Case) -> None:
    """Appraised one second after the earliest nextUpdate of its collateral, a quote is refused."""
    code, _ = run_cli(*quote_args(corpus / "tdx", case))
    assert code == (0 if not case.errors else 1)
    expiries = _next_updates(corpus / "tdx", case)
    at = (min(expiries) + _ONE_SECOND).strftime("%Y-%m-%dT%H:%M:%SZ")
    shifted = Case(case.quote, case.options, at, False, case.tcb_status)
    code, out = run_cli(*quote_args(corpus / "tdx", shifted))
    assert code == 1
    assert out["verified"] is False
    assert {e["code"] for e in out["errors"]} & {"collateral.expired", "crl.expired", "cert.expired"}


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x04\x00\x02\x00" + bytes(20))
    code, out = run_cli("attest", "verify-quote", str(junk))
    assert code == 2
    assert out["errors"][0]["code"] == "quote.truncated"
    code, out = run_cli("attest", "verify-quote", str(tmp_path / "missing.bin"))
    assert (code, out["errors"][0]["code"]) == (2, "input.unreadable")


def test_bad_time_exits_2(corpus: Path) -> None:
    code, out = run_cli("attest", "verify-quote", str(corpus / "tdx/dcap-qvl/tdx_quote"), "--at", "yesterday")
    assert (code, out["errors"][0]["code"]) == (2, "input.unreadable")


def test_readable_table_output(corpus: Path) -> None:
    result = CliRunner().invoke(app, quote_args(corpus / "tdx", CASES[0]))
    assert result.exit_code == 0
    assert "ACCEPTED" in result.stdout
    assert "quote.signature" in result.stdout


_ONE_SECOND = timedelta(seconds=1)


def _next_updates(tdx: Path, case: Case) -> list[datetime]:
    """nextUpdate of every dated item of a case's collateral (TCB Info, QE Identity, CRLs)."""
    opts = dict(zip(case.options[::2], case.options[1::2], strict=True))
    out: list[datetime] = []
    if "--collateral" in opts:
        bundle = json.loads((tdx / opts["--collateral"]).read_text())
        docs = [json.loads(bundle["tcb_info"]), json.loads(bundle["qe_identity"])]
        crls = [bytes.fromhex(bundle["pck_crl"]), bytes.fromhex(bundle["root_ca_crl"])]
    else:
        docs = [
            json.loads((tdx / opts["--tcb-info"]).read_text())["tcbInfo"],
            json.loads((tdx / opts["--qe-identity"]).read_text())["enclaveIdentity"],
        ]
        crls = [(tdx / opts[k]).read_bytes() for k in ("--pck-crl", "--root-ca-crl") if k in opts]
    out += [datetime.fromisoformat(d["nextUpdate"]) for d in docs]
    out += [c.next_update_utc for c in map(x509.load_der_x509_crl, crls) if c.next_update_utc]
    return out
