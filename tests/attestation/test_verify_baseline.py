"""Transparent code attestation, end to end, as an outsider sees it: the BGS publishes the baseline
of a simulated TD in its log; the TD's EPS serves that baseline's bundle with fresh evidence; and
`teeplane verify` checks the bundle's signature and log inclusion under keys it pins, then judges
the evidence by the baseline's measurements. Real processes on loopback (BGS, EPS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from baseline_testing import measurements as other_measurements
from baseline_testing import metadata
from processes import run_teeplane, service
from service_files import ServiceFiles

from teeplane.baseline.bundle import BaselineBundle, dump_bundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.measurements import ExpectedMeasurements

TOKEN = "verify-baseline-admin"
ORIGIN = "bgs.example.com/baselines"


@dataclass
class Published:
    tmp: Path
    bgs: str
    eps: str
    bundle: Path
    other_bundle: Path
    baseline_id: str


def _measurements_of(files: ServiceFiles) -> ExpectedMeasurements:
    m = files.td.report(b"").measurements()
    rtmrs = {name: m[name] for name in ("rtmr1", "rtmr2", "rtmr3")}
    return ExpectedMeasurements(tee="tdx", mrtd=m["mrtd"], rtmrs=rtmrs, mrconfigid=m["mrconfigid"])


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    tmp = tmp_path_factory.mktemp("verify-baseline")
    files = ServiceFiles.write(tmp, TOKEN)
    keys = (["-o", str(tmp / "sign.pem"), "--type", "ecdsa-p256"], ["-o", str(tmp / "log.pem"), "--origin", ORIGIN],
            ["-o", str(tmp / "stranger.pem")])  # fmt: skip
    for args in keys:
        assert run_teeplane("baseline", "keygen", *args, cwd=tmp).returncode == 0
    bgs_args = ["bgs", "serve", "--state", str(tmp / "bgs"), "--origin", ORIGIN, "--admin-token-file",
                str(tmp / "admin-tokens"), "--signing-key", str(tmp / "sign.pem"),
                "--log-key", str(tmp / "log.pem")]  # fmt: skip
    with ExitStack() as stack:
        bgs = stack.enter_context(service("bgs", bgs_args, tmp))
        client = BgsClient(bgs, admin_token=TOKEN)
        record = client.publish_measurements(_measurements_of(files))
        other = client.publish_measurements(other_measurements(7), metadata(7))
        paths = []
        for name, baseline_id in (("bundle.json", record.id), ("other.json", other.id)):
            fetched = run_teeplane("baseline", "fetch", baseline_id, "--bgs", bgs, "-o", str(tmp / name), cwd=tmp)
            assert fetched.returncode == 0, fetched.stderr
            paths.append(tmp / name)
        eps = stack.enter_context(service("eps", [*files.eps_args(), "--baseline-bundle", str(paths[0])], tmp))
        yield Published(tmp, bgs, eps, paths[0], paths[1], record.id)


def verify(published: Published, *options: str, signer: str = "sign.pem.pub") -> tuple[int, dict[str, Any]]:
    tmp = published.tmp
    result = run_teeplane("verify", published.eps, "--root", str(tmp / "root.pem"), "--allow-simulated",
                          "--signer-key", str(tmp / signer), "--log-key", str(tmp / "log.pem.vkey"), *options,
                          "--json", cwd=tmp)  # fmt: skip
    return result.returncode, json.loads(result.stdout)


def checks(report: dict[str, Any]) -> dict[str, bool]:
    return {check["name"]: check["ok"] for check in report["checks"]}


def test_the_service_is_judged_by_its_logged_baseline(published: Published) -> None:
    code, report = verify(published, "--baseline-from-service")
    assert code == 0, report["errors"]
    assert checks(report)["baseline"] and checks(report)["reference.values"] and checks(report)["binding"]
    baseline = next(c["detail"] for c in report["checks"] if c["name"] == "baseline")
    assert published.baseline_id in baseline and ORIGIN in baseline
    # The same with the bundle held by the verifier, or fetched by its ID from the BGS.
    assert verify(published, "--baseline", str(published.bundle))[0] == 0
    assert verify(published, "--baseline-id", published.baseline_id, "--bgs", published.bgs)[0] == 0


def test_a_baseline_signed_by_someone_else_is_refused(published: Published) -> None:
    code, report = verify(published, "--baseline-from-service", signer="stranger.pem.pub")
    assert code == 1 and checks(report)["baseline"] is False
    assert report["errors"][0]["code"] == "dsse.untrusted_signer"


def test_another_workloads_baseline_is_refused(published: Published) -> None:
    code, report = verify(published, "--baseline", str(published.other_bundle))
    assert code == 1 and checks(report)["baseline"] is False
    assert "the service says baseline" in report["errors"][0]["message"]


def test_a_tampered_or_unlogged_bundle_is_refused(published: Published) -> None:
    bundle = BaselineBundle.model_validate_json(published.bundle.read_bytes())
    unlogged = published.tmp / "unlogged.json"
    unlogged.write_bytes(dump_bundle(bundle.model_copy(update={"proof": None})))
    code, report = verify(published, "--baseline", str(unlogged))
    assert (code, report["errors"][0]["code"]) == (1, "baseline.not_logged")
    unpinned = run_teeplane("verify", published.eps, "--baseline-from-service", cwd=published.tmp)
    assert unpinned.returncode == 2 and "--signer-key and --log-key" in unpinned.stderr  # never a silent pass
