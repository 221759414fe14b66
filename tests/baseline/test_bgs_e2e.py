"""The BGS as a real process (`teeplane bgs serve`), driven by the `teeplane baseline` commands:
publish, fetch, verify offline, restart, and a fork shown to a verifier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from baseline_testing import measurements, metadata, signed
from processes import Service
from typer.testing import CliRunner

from teeplane.baseline.bundle import BaselineBundle, dump_bundle, read_bundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.keys import load_log_signer, load_signer
from teeplane.baseline.tlog.storage import TileLog
from teeplane.cli import app

TOKEN = "e2e-admin-token"
ORIGIN = "bgs.example.com/baselines"


def teeplane(*args: str) -> tuple[int, dict[str, Any]]:
    """Run a `teeplane` command in-process with --json; its exit code and JSON output."""
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.output.strip(), result.exception
    return result.exit_code, json.loads(result.output)


def keygen(tmp: Path) -> None:
    assert teeplane("baseline", "keygen", "-o", str(tmp / "sign.pem"), "--type", "ecdsa-p256")[0] == 0
    assert teeplane("baseline", "keygen", "-o", str(tmp / "log.pem"), "--origin", ORIGIN)[0] == 0
    (tmp / "tokens").write_text(TOKEN + "\n")


def verify(tmp: Path, bundle: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    return teeplane("baseline", "verify", str(bundle), "--signer-key", str(tmp / "sign.pem.pub"),
                    "--log-key", str(tmp / "log.pem.vkey"), *extra)  # fmt: skip


def test_publish_fetch_verify_restart_and_fork(tmp_path: Path) -> None:
    keygen(tmp_path)
    bgs = Service("bgs", ["bgs", "serve", "--state", str(tmp_path / "state"), "--origin", ORIGIN,
                          "--admin-token-file", str(tmp_path / "tokens"), "--signing-key", str(tmp_path / "sign.pem"),
                          "--log-key", str(tmp_path / "log.pem")], tmp_path)  # fmt: skip
    bgs.start()
    try:
        client = BgsClient(bgs.url, admin_token=TOKEN)
        # unauthenticated publishing is refused, and logs nothing
        refused = httpx.post(bgs.url + "/v1/baselines", json={"measurements": measurements().model_dump(mode="json")})
        assert (refused.status_code, refused.json()["code"]) == (401, "auth.admin_required")

        # two baselines signed by the BGS, two signed here and published with the CLI
        ids = [client.publish_measurements(measurements(seed), metadata(seed)).id for seed in range(2)]
        first_checkpoint = tmp_path / "checkpoint-2"
        first_checkpoint.write_bytes(client.checkpoint())
        signer = load_signer((tmp_path / "sign.pem").read_bytes())
        for seed in range(2, 4):
            unpublished = tmp_path / f"local-{seed}.json"
            unpublished.write_bytes(dump_bundle(BaselineBundle(envelope=signed(seed, signer))))
            code, out = verify(tmp_path, unpublished)
            assert (code, out["errors"][0]["code"]) == (1, "baseline.not_logged")
            code, out = teeplane("baseline", "publish", str(unpublished), "--bgs", bgs.url, "--token", TOKEN)
            assert code == 0, out
            assert out["log"] == {"origin": ORIGIN, "index": seed, "tree_size": seed + 1}
            ids.append(out["id"])
            assert verify(tmp_path, unpublished)[0] == 0
        code, out = teeplane("baseline", "publish", str(tmp_path / "local-3.json"), "--bgs", bgs.url)
        assert (code, out["errors"][0]["code"]) == (1, "auth.admin_required")

        # fetch each, verify offline; against the checkpoint seen after two, a proof is needed
        fetched = []
        for number, baseline_id in enumerate(ids):
            path = tmp_path / f"fetched-{number}.json"
            assert teeplane("baseline", "fetch", baseline_id, "--bgs", bgs.url, "-o", str(path))[0] == 0
            fetched.append(path)
            code, out = verify(tmp_path, path)
            assert code == 0, out
            assert (out["id"], out["log"]["index"], out["log"]["tree_size"]) == (baseline_id, number, 4)
        code, out = verify(tmp_path, fetched[0], "--checkpoint", str(first_checkpoint))
        assert (code, out["errors"][0]["code"]) == (1, "checkpoint.consistency_unproven")
        code, out = verify(tmp_path, fetched[0], "--checkpoint", str(first_checkpoint), "--bgs", bgs.url)
        assert (code, out["consistent_with"]) == (0, {"tree_size": 2}), out
        carried = tmp_path / "with-consistency.json"
        assert teeplane("baseline", "fetch", ids[3], "--bgs", bgs.url, "-o", str(carried),
                        "--since", str(first_checkpoint))[0] == 0  # fmt: skip
        assert read_bundle(carried.read_bytes()).consistency is not None
        assert verify(tmp_path, carried, "--checkpoint", str(first_checkpoint))[0] == 0
        # the table output
        vkey, pub = (tmp_path / "log.pem.vkey").read_text().strip(), str(tmp_path / "sign.pem.pub")
        table = CliRunner().invoke(app, ["baseline", "verify", str(carried), "--signer-key", pub, "--log-key", vkey,
                                         "--checkpoint", str(first_checkpoint)])  # fmt: skip
        assert table.exit_code == 0, table.output
        assert "baseline verified" in table.output and "extends the checkpoint of size 2" in table.output

        # a restart keeps the log, the checkpoint and every baseline
        before = client.checkpoint()
        bgs.stop()
        bgs.start()
        assert client.checkpoint() == before
        for number, baseline_id in enumerate(ids):
            record = client.get(baseline_id)
            assert record.index == number
            assert record.envelope == read_bundle(fetched[number].read_bytes()).envelope
        more = client.publish_measurements(measurements(4), metadata(4))
        assert more.index == 4
        assert verify(tmp_path, fetched[1], "--checkpoint", str(first_checkpoint), "--bgs", bgs.url)[0] == 0

        # the log key signed another tree of size 2 (a split view): a verifier who saw it finds the fork
        with TileLog.create(tmp_path / "fork", load_log_signer((tmp_path / "log.pem").read_bytes(), ORIGIN)) as fork:
            fork.append([signed(seed + 10, signer).canonical() for seed in range(2)])
            (tmp_path / "forked-checkpoint").write_bytes(fork.checkpoint)
        code, out = verify(tmp_path, fetched[1], "--checkpoint", str(tmp_path / "forked-checkpoint"), "--bgs", bgs.url)
        assert (code, out["errors"][0]["code"]) == (1, "checkpoint.inconsistent")
    finally:
        bgs.stop()
