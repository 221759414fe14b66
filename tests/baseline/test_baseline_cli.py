"""`teeplane baseline keygen|show|verify` on files: outputs, exit codes and error codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from baseline_testing import document, logged, signed
from typer.testing import CliRunner

from teeplane.baseline.bundle import BaselineBundle, dump_bundle
from teeplane.baseline.keys import load_log_signer, load_public_key, load_signer
from teeplane.baseline.tlog.note import Verifier
from teeplane.baseline.tlog.storage import TileLog
from teeplane.cli import app

ORIGIN = "example.com/cli-log"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, output = run(*args, "--json")
    return code, json.loads(output)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    assert run("baseline", "keygen", "-o", str(tmp_path / "sign.pem"))[0] == 0
    assert run("baseline", "keygen", "-o", str(tmp_path / "log.pem"), "--origin", ORIGIN)[0] == 0
    return tmp_path


@pytest.fixture
def bundle(keys: Path) -> Path:
    """A bundle logged at index 1 of a log of size 2."""
    signer = load_signer((keys / "sign.pem").read_bytes())
    with TileLog.create(keys / "log", load_log_signer((keys / "log.pem").read_bytes(), ORIGIN)) as log:
        logged(log, signed(1, signer))
        path = keys / "bundle.json"
        path.write_bytes(dump_bundle(logged(log, signed(0, signer))))
    return path


def test_keygen_writes_the_key_files(keys: Path) -> None:
    assert stat.S_IMODE((keys / "sign.pem").stat().st_mode) == 0o600
    signer = load_signer((keys / "sign.pem").read_bytes())
    assert load_public_key((keys / "sign.pem.pub").read_bytes()) == signer.public_key
    vkey = (keys / "log.pem.vkey").read_text().strip()
    assert Verifier.from_vkey(vkey) == load_log_signer((keys / "log.pem").read_bytes(), ORIGIN).verifier
    code, out = run_json("baseline", "keygen", "-o", str(keys / "p256.pem"), "--type", "ecdsa-p256")
    assert code == 0 and out["keyid"] == load_signer((keys / "p256.pem").read_bytes()).public_key.keyid


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-o", "sign.pem"], "key.exists"),
        (["-o", "new.pem", "--type", "ecdsa-p256", "--origin", ORIGIN], "key.unsupported"),
    ],
)
def test_keygen_refuses(keys: Path, args: list[str], error: str) -> None:
    before = (keys / "sign.pem").read_bytes()
    code, out = run_json("baseline", "keygen", *[str(keys / a) if a.endswith(".pem") else a for a in args])
    assert (code, out["errors"][0]["code"]) == (2, error)
    assert (keys / "sign.pem").read_bytes() == before and not (keys / "new.pem").exists()


def test_show_reads_without_verifying(bundle: Path) -> None:
    code, out = run_json("baseline", "show", str(bundle))
    assert code == 0
    assert (out["id"], out["verified"], out["tee"], out["name"]) == (document(0).id, False, "tdx", "payments")
    assert out["log"] == {"origin": ORIGIN, "index": 1, "tree_size": 2}
    assert out["statement"]["predicateType"] == "https://teeplane.io/baseline/v1"
    code, text = run("baseline", "show", str(bundle))
    assert code == 0 and "not verified" in text and "measurement/rtmr1" in text and "index 1 of" in text


def test_verify_exit_codes(bundle: Path, keys: Path) -> None:
    vkey = (keys / "log.pem.vkey").read_text().strip()
    pinned = ["--signer-key", str(keys / "sign.pem.pub")]
    code, out = run_json("baseline", "verify", str(bundle), *pinned, "--log-key", vkey)
    assert code == 0, out
    assert out["log"]["index"] == 1 and out["reference_values"]["baseline_id"] == out["id"]
    assert out["reference_values"]["mrtd"] == [document(0).statement.predicate.measurements.mrtd]
    # the log key from its file; a time outside the validity window
    code, out = run_json("baseline", "verify", str(bundle), *pinned, "--log-key", str(keys / "log.pem.vkey"),
                         "--at", "2031-01-01T00:00:00Z")  # fmt: skip
    assert (code, out["errors"][0]["code"]) == (1, "baseline.expired")
    # another signing key pinned
    other = keys / "other.pem"
    run("baseline", "keygen", "-o", str(other))
    code, out = run_json("baseline", "verify", str(bundle), "--signer-key", f"{other}.pub", "--log-key", vkey)
    assert (code, out["verified"], out["errors"][0]["code"]) == (1, False, "dsse.untrusted_signer")
    # unreadable inputs
    code, out = run_json("baseline", "verify", str(keys / "sign.pem"), *pinned, "--log-key", vkey)
    assert (code, out["errors"][0]["code"]) == (2, "bundle.malformed")
    code, out = run_json("baseline", "verify", str(bundle), *pinned, "--log-key", "not a key")
    assert (code, out["errors"][0]["code"]) == (2, "note.key_malformed")
    code, out = run_json("baseline", "verify", str(bundle), "--signer-key", str(bundle), "--log-key", vkey)
    assert (code, out["errors"][0]["code"]) == (2, "key.malformed")
    code, text = run("baseline", "verify", str(bundle), *pinned, "--log-key", vkey, "--at", "yesterday")
    assert code == 2 and "RFC 3339" in text


def test_verify_refuses_an_unlogged_bundle(bundle: Path, keys: Path) -> None:
    unlogged = keys / "unlogged.json"
    unlogged.write_bytes(dump_bundle(BaselineBundle.model_validate_json(bundle.read_bytes()).model_copy(
        update={"proof": None})))  # fmt: skip
    code, out = run_json("baseline", "verify", str(unlogged), "--signer-key", str(keys / "sign.pem.pub"),
                         "--log-key", str(keys / "log.pem.vkey"))  # fmt: skip
    assert (code, out["errors"][0]["code"]) == (1, "baseline.not_logged")
    assert "proof" not in json.loads(unlogged.read_text())
