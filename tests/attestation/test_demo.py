"""`teeplane demo`: every step reaches its expected outcome, and the files it writes verify."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from teeplane.cli import app


def test_demo_passes_and_leaves_verifiable_evidence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.stdout
    assert "demo passed" in result.stdout
    assert "FAILED" not in result.stdout
    files = [str(tmp_path / n) for n in ("quote.bin", "collateral.json", "root.pem")]
    args = ["attest", "verify-quote", files[0], "--collateral", files[1], "--root", files[2], "--json"]
    accepted = CliRunner().invoke(app, [*args, "--allow-simulated"])
    assert accepted.exit_code == 0
    out = json.loads(accepted.stdout)
    assert (out["accepted"], out["simulated"], out["tcb_status"]) == (True, True, "UpToDate")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert {e["code"] for e in json.loads(refused.stdout)["errors"]} == {"policy.simulated_rejected"}
    under_intel = CliRunner().invoke(app, ["attest", "verify-quote", files[0], "--collateral", files[1], "--json"])
    assert under_intel.exit_code == 1
    assert json.loads(under_intel.stdout)["verified"] is False
