"""`teeplane attest verify-snp` on the genuine SEV-SNP samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeplane.cli import app

pytestmark = pytest.mark.corpus
AT = "2025-01-01T00:00:00Z"


def run(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["attest", "verify-snp", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_trustee_report_is_accepted(corpus: Path) -> None:
    snp = corpus / "snp/trustee"
    report = (snp / "test-report.bin").read_bytes()
    code, out = run(str(snp / "test-report.bin"), "--cert", str(snp / "test-vcek.der"),
                    "--chain", str(snp / "milan_ask_ark_asvk.pem"), "--at", AT)  # fmt: skip
    assert (code, out["verified"], out["accepted"], out["tee"]) == (0, True, True, "snp")
    measurements = out["measurements"]
    assert isinstance(measurements, dict)
    assert measurements["measurement"] == report[0x90:0xC0].hex()
    assert measurements["host_data"] == report[0xC0:0xE0].hex()
    assert measurements["report_data"] == report[0x50:0x90].hex()


def test_go_sev_guest_report_is_refused_for_debug_unless_allowed(corpus: Path) -> None:
    snp = corpus / "snp/go-sev-guest"
    args = (
        str(snp / "attestation.bin"),
        "--cert",
        str(snp / "vcek.testcer"),
        "--chain",
        str(snp / "ask_ark_milan.pem"),
    )
    code, out = run(*args, "--at", AT)
    assert (code, out["verified"], out["debug"]) == (1, True, True)
    assert [e["code"] for e in out["errors"]] == ["policy.debug_rejected"]  # type: ignore[index]
    code, out = run(*args, "--at", AT, "--allow-debug")
    assert (code, out["accepted"]) == (0, True)


def test_wrong_product_chain_is_refused(corpus: Path) -> None:
    snp = corpus / "snp"
    code, out = run(str(snp / "trustee/test-report.bin"), "--cert", str(snp / "trustee/test-vcek.der"),
                    "--chain", str(snp / "go-sev-guest/ask_ark_genoa.pem"), "--at", AT)  # fmt: skip
    assert code == 1
    assert "snp.chain_invalid" in {e["code"] for e in out["errors"]}  # type: ignore[index]


def test_truncated_report_exits_2(corpus: Path, tmp_path: Path) -> None:
    snp = corpus / "snp/trustee"
    short = tmp_path / "short.bin"
    short.write_bytes((snp / "test-report.bin").read_bytes()[:100])
    code, out = run(str(short), "--cert", str(snp / "test-vcek.der"), "--chain", str(snp / "milan_ask_ark_asvk.pem"))
    assert code == 2
    assert out["errors"][0]["code"] == "snp.report_malformed"  # type: ignore[index]
