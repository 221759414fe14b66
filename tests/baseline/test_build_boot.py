"""From a recipe to expected measurements, and a simulated TD booted from the same recipe that
reports exactly them: its quote, its event log, and the RAS's verdict."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from processes import run_teeplane, service
from ras_testing import NOW, WORKLOAD, evidence_request, make_ras
from typer.testing import CliRunner

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.binding import b64url_decode
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.eventlog import parse_event_log, replay_rtmrs
from teeplane.attestation.reference import AppraisalPolicy, compare_reference
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.eventlog import write_event_log
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import TrustAnchor
from teeplane.baseline import dsse
from teeplane.baseline.boot import boot_simulated_td
from teeplane.baseline.build import measure_recipe
from teeplane.baseline.bundle import read_bundle
from teeplane.baseline.document import PAYLOAD_TYPE, parse_document
from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import IMAGE, Kernel, initdata, write_build, write_recipe
from teeplane.baseline.keys import load_public_key
from teeplane.baseline.measure.authenticode import authenticode_sha384
from teeplane.baseline.measure.events import EV_EFI_ACTION, EV_EFI_BOOT_SERVICES_APPLICATION, EV_EVENT_TAG
from teeplane.baseline.measure.tdvf import PageOrder, tdvf_mrtd
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.recipe import Recipe, load_recipe
from teeplane.cli import app


@pytest.fixture(scope="module")
def authority() -> SimulationAuthority:
    return SimulationAuthority.generate(NOW - timedelta(days=1))


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    return write_build(tmp_path)


def recipe(directory: Path, **overrides: Any) -> Recipe:
    return load_recipe(write_recipe(directory, **overrides))


def appraise(td: SimulatedTd, authority: SimulationAuthority) -> Appraisal:
    quote = parse_quote(td.quote(b"nonce"))
    collateral = load_bundle(bundle_json(authority, NOW - timedelta(hours=1)))
    anchor = TrustAnchor(authority.root_cert, simulated=True)
    return appraise_quote(quote, collateral, anchor, NOW, Policy(allow_simulated=True))


def test_a_recipe_gives_every_measurement(build_dir: Path) -> None:
    expected = measure_recipe(recipe(build_dir))
    firmware = (build_dir / "OVMF.fd").read_bytes()
    assert expected.tee == "tdx"
    assert expected.mrtd == tdvf_mrtd(firmware, PageOrder.SINGLE_PASS).hex()
    assert expected.mrconfigid == hashlib.sha384(initdata()).hexdigest()
    assert sorted(expected.rtmrs) == ["rtmr1", "rtmr2", "rtmr3"]  # RTMR0 needs a golden log
    descriptions = {name: [e.description for e in events] for name, events in expected.events.items()}
    assert descriptions["rtmr1"] == [
        "kernel (Authenticode)",
        "EV_EFI_ACTION Calling EFI Application from Boot Option",
        "EV_SEPARATOR",
        "EV_EFI_ACTION Exit Boot Services Invocation",
        "EV_EFI_ACTION Exit Boot Services Returned with Success",
    ]
    assert descriptions["rtmr2"] == ["kernel command line (LoadOptions, UTF-16)", "initrd"]
    assert expected.events["rtmr2"][1].digest == hashlib.sha384(b"initrd " * 1000).hexdigest()
    assert descriptions["rtmr3"][0] == f"container image {IMAGE}"
    names = [a.name for a in expected.artifacts]
    assert names[:5] == ["firmware", "kernel", "initrd", "cmdline", "initdata"]
    assert f"image:{IMAGE}" in names
    reference = expected.reference_values("baseline-1")
    assert reference.mrtd == [expected.mrtd] and reference.rtmr_events["rtmr1"][2] == expected.events["rtmr1"][2].digest


def test_the_simulated_td_reports_exactly_the_baseline(build_dir: Path, authority: SimulationAuthority) -> None:
    source = recipe(build_dir)
    expected = measure_recipe(source)
    td = boot_simulated_td(authority, source)
    appraisal = appraise(td, authority)
    assert appraisal.verified
    measured = appraisal.measurements
    assert (measured["mrtd"], measured["mrconfigid"]) == (expected.mrtd, expected.mrconfigid)
    assert {name: measured[name] for name in expected.rtmrs} == expected.rtmrs
    log = parse_event_log(write_event_log(td.events))
    assert [r.hex() for r in replay_rtmrs(log)] == [measured[f"rtmr{i}"] for i in range(4)]
    assert compare_reference(appraisal, expected.reference_values("baseline-1"), log) == []
    # the log carries the event types a real TD logs
    rtmr1 = [e.event_type for e in log.events if e.index == 2]
    assert rtmr1[:2] == [EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_ACTION]
    assert {e.event_type for e in log.events if e.index == 3} == {EV_EVENT_TAG}


def test_the_ras_accepts_the_td_against_the_baseline(
    build_dir: Path, tmp_path: Path, authority: SimulationAuthority
) -> None:
    source = recipe(build_dir)
    expected = measure_recipe(source)
    ras = make_ras(tmp_path / "ras.db", authority)
    try:
        ras.service.put_reference_values(WORKLOAD.key, expected.reference_values("baseline-measured"))
        ras.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
        client = ras.client()
        issued = client.attest(evidence_request(boot_simulated_td(authority, source), client.challenge().nonce))
        assert issued.token
    finally:
        ras.service.store.close()


def test_another_kernel_is_refused(build_dir: Path, authority: SimulationAuthority) -> None:
    expected = measure_recipe(recipe(build_dir))
    (build_dir / "bzImage").write_bytes(Kernel(seed=b"a different kernel").build())
    td = boot_simulated_td(authority, recipe(build_dir))
    log = parse_event_log(write_event_log(td.events))
    errors = compare_reference(appraise(td, authority), expected.reference_values(), log)
    assert {(e.code, e.where) for e in errors} == {
        ("policy.measurement_mismatch", "measurements.rtmr1"),
        ("policy.measurement_mismatch", "eventlog.rtmr1[0]"),
    }


def test_qemu_version_families_measure_differently(build_dir: Path) -> None:
    def measured(qemu: str) -> ExpectedMeasurements:
        return measure_recipe(recipe(build_dir, layout={"qemu": qemu, "memory": "2G"}))

    v8, v9, v10 = measured("8.2"), measured("9.1"), measured("10.0")
    assert v8.mrtd != v9.mrtd == v10.mrtd  # two-pass against single-pass page adds
    assert v8.rtmrs["rtmr1"] == v9.rtmrs["rtmr1"] != v10.rtmrs["rtmr1"]  # QEMU 10 leaves the kernel unpatched
    raw = authenticode_sha384((build_dir / "bzImage").read_bytes()).hex()
    assert v10.events["rtmr1"][0].digest == raw != v9.events["rtmr1"][0].digest
    smaller = measure_recipe(recipe(build_dir, layout={"qemu": "9.1", "memory": "1G"}))
    assert smaller.rtmrs["rtmr1"] != v9.rtmrs["rtmr1"]  # the initrd address in the setup header moved
    assert smaller.rtmrs["rtmr2"] == v9.rtmrs["rtmr2"]
    # from 0xB0000000 on, q35 splits memory at 2 GiB: low memory, so the initrd address, stays put
    assert measure_recipe(recipe(build_dir, layout={"qemu": "9.1", "memory": "8G"})).rtmrs == v9.rtmrs


def test_without_initrd_initdata_or_images(build_dir: Path, authority: SimulationAuthority) -> None:
    source = recipe(build_dir, initrd=None, initdata=None, images=[], cmdline="")
    expected = measure_recipe(source)
    assert expected.mrconfigid == "00" * 48
    assert expected.events["rtmr2"] == [] and expected.events["rtmr3"] == []
    assert expected.rtmrs["rtmr2"] == "00" * 48
    td = boot_simulated_td(authority, source)
    assert [r.hex() for r in td.rtmrs[1:]] == [expected.rtmrs[f"rtmr{i}"] for i in (1, 2, 3)]


@pytest.mark.corpus
def test_rtmr0_from_a_golden_log(build_dir: Path, corpus: Path, authority: SimulationAuthority) -> None:
    golden = corpus / "tdx/trustee/CCEL_data_ovmf"
    source = recipe(build_dir, rtmr0={"source": str(golden)}, layout={"qemu": "9.1", "separator": "rtmr0"})
    expected = measure_recipe(source)
    recorded_rtmr0 = replay_rtmrs(parse_event_log(golden.read_bytes()))[0]
    assert expected.rtmrs["rtmr0"] == recorded_rtmr0.hex()
    assert (
        len(expected.events["rtmr0"]) == 14
    )  # TD HOB, CFV, 5 secure-boot variables, ACPI, boot variables, 2 separators
    assert len(expected.events["rtmr1"]) == 4  # this firmware puts its separator in RTMR0
    td = boot_simulated_td(authority, source)
    assert td.rtmrs[0] == recorded_rtmr0
    log = parse_event_log(write_event_log(td.events))
    assert compare_reference(appraise(td, authority), expected.reference_values(), log) == []


def test_a_snp_recipe_does_not_boot_the_simulated_tdx_module(build_dir: Path, authority: SimulationAuthority) -> None:
    source = recipe(build_dir, tee="snp", layout=None, images=[], snp={"vcpus": 1, "vcpu_type": "EPYC-v4"})
    with pytest.raises(BuildInputError, match="only a TDX recipe"):
        boot_simulated_td(authority, source)


def test_baseline_build_signs_what_the_recipe_measures(build_dir: Path) -> None:
    """`teeplane baseline build`: the signed bundle carries exactly the calculators' measurements,
    and its signature verifies under the builder's key; a broken recipe is a usage error."""
    recipe(build_dir)
    runner = CliRunner()
    keygen = runner.invoke(app, ["baseline", "keygen", "-o", str(build_dir / "sign.pem"), "--json"])
    assert keygen.exit_code == 0, keygen.output
    build = ["baseline", "build", str(build_dir / "recipe.yaml"), "--signing-key", str(build_dir / "sign.pem")]
    built = runner.invoke(app, [*build, "-o", str(build_dir / "bundle.json"), "--json"])
    assert built.exit_code == 0, built.output
    bundle = read_bundle((build_dir / "bundle.json").read_bytes())
    verified = dsse.verify(bundle.envelope, [load_public_key((build_dir / "sign.pem.pub").read_bytes())], PAYLOAD_TYPE)
    statement = parse_document(verified.payload).statement
    assert statement.predicate.measurements == measure_recipe(load_recipe(build_dir / "recipe.yaml"))
    assert json.loads(built.output)["id"] == parse_document(verified.payload).id

    (build_dir / "bzImage").write_bytes(b"not a kernel")
    broken = runner.invoke(app, [*build, "-o", str(build_dir / "broken.json"), "--json"])
    assert broken.exit_code == 2 and json.loads(broken.output)["errors"][0]["code"] == "kernel.unsupported"
    assert not (build_dir / "broken.json").exists()


def test_eps_serves_a_td_booted_from_a_recipe(build_dir: Path) -> None:
    """`teeplane eps serve --recipe`: the simulated TD in a real EPS process measures what the baseline says."""
    expected = measure_recipe(recipe(build_dir))
    args = ["eps", "serve", "--provider", "simulated", "--recipe", str(build_dir / "recipe.yaml")]
    with service("eps", args, build_dir) as eps:
        served = EpsClient(eps).evidence(b"n" * 32)
    measured = parse_quote(b64url_decode(served.evidence, "evidence")).body
    assert (measured.mrtd.hex(), measured.mrconfigid.hex()) == (expected.mrtd, expected.mrconfigid)
    assert {f"rtmr{i}": measured.rtmrs[i].hex() for i in (1, 2, 3)} == expected.rtmrs
    assert served.event_log is not None
    events = parse_event_log(b64url_decode(served.event_log, "event log"))
    assert replay_rtmrs(events)[1:] == measured.rtmrs[1:]


def test_eps_refuses_a_recipe_it_cannot_boot(build_dir: Path) -> None:
    (build_dir / "bzImage").write_bytes(b"not a kernel")
    args = ["eps", "serve", "--provider", "simulated", "--recipe", str(write_recipe(build_dir)), "--port", "9"]
    refused = run_teeplane(*args, cwd=build_dir)
    assert refused.returncode == 2 and "kernel.unsupported" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
