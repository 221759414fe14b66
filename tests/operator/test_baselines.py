"""Baseline verification in the operator: records from a BGS (the test BGS on loopback, serving
signed and logged baselines, and forged ones) verified under pinned keys, and the workload's
initdata checked against the register the baseline expects."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from operator_stack import INITDATA, MEASUREMENTS, Bgs, Forgery
from processes import free_port

from teeplane.baseline.keys import load_public_key
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.tlog.note import Verifier
from teeplane.operator.baselines import CACHE_SECONDS, BaselineError, BgsBaselines, VerifiedBaseline
from teeplane.operator.model import ConfidentialWorkloadSpec
from teeplane.operator.steps import verify_baseline

#: An SNP baseline of INITDATA: HOST_DATA is its SHA-384 cut to 32 bytes.
SNP = ExpectedMeasurements(
    tee="snp", snp_measurement="22" * 48, host_data=hashlib.sha384(INITDATA.encode()).hexdigest()[:64]
)


@pytest.fixture
def bgs(tmp_path: Path) -> Iterator[Bgs]:
    served = Bgs(tmp_path)
    try:
        yield served
    finally:
        served.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def verifier(bgs: Bgs, clock: Clock | None = None, log_key: str | None = None, url: str | None = None) -> BgsBaselines:
    return BgsBaselines(
        url or bgs.url,
        [load_public_key(bgs.signer_key_file.read_bytes())],
        Verifier.from_vkey(log_key or bgs.log_key),
        clock=clock or Clock(),
    )


def test_a_signed_and_logged_baseline_verifies_by_id_and_by_name(bgs: Bgs) -> None:
    baseline_id = bgs.publish("app", "1")
    baselines = verifier(bgs)
    by_id = baselines.verify(baseline_id)
    assert by_id == VerifiedBaseline(baseline_id, MEASUREMENTS)
    assert baselines.verify("app@1") == by_id


@pytest.mark.parametrize(
    ("forgery", "reason", "detail"),
    [
        ("other-signer", "SignatureNotVerified", "dsse.untrusted_signer: no signature by a pinned signing key"),
        ("tampered", "SignatureNotVerified", "dsse.signature_invalid"),
        ("wrong-proof", "InclusionNotProven", "merkle.root_mismatch"),
    ],
)
def test_a_forged_record_is_refused_naming_what_failed(bgs: Bgs, forgery: Forgery, reason: str, detail: str) -> None:
    bgs.publish("app", "1", forgery=forgery)
    with pytest.raises(BaselineError) as refused:
        verifier(bgs).verify("app@1")
    assert (refused.value.reason, refused.value.transient) == (reason, False)
    assert refused.value.message.startswith("baseline app@1: ") and detail in refused.value.message


def test_a_proof_under_another_log_key_is_refused(bgs: Bgs, tmp_path: Path) -> None:
    bgs.publish("app", "1")
    other = Bgs(tmp_path / "other")
    try:
        with pytest.raises(BaselineError) as refused:
            verifier(bgs, log_key=other.log_key).verify("app@1")
    finally:
        other.close()
    assert refused.value.reason == "InclusionNotProven" and "note." in refused.value.message


def test_a_record_that_is_not_the_one_named_or_not_there(bgs: Bgs) -> None:
    bgs.publish("app", "2")
    bgs.records["app@1"] = bgs.records["app@2"]
    baselines = verifier(bgs)
    with pytest.raises(BaselineError, match="asked for app@1, the BGS sent app@2") as mismatch:
        baselines.verify("app@1")
    assert mismatch.value.reason == "BaselineMismatch"
    with pytest.raises(BaselineError) as missing:
        baselines.verify("app@3")
    assert (missing.value.reason, missing.value.transient) == ("BaselineNotFound", False)
    with pytest.raises(BaselineError) as down:
        verifier(bgs, url=f"http://127.0.0.1:{free_port()}").verify("app@2")
    assert (down.value.reason, down.value.transient) == ("BgsUnavailable", True)


def test_verified_baselines_are_reused_for_a_while(bgs: Bgs) -> None:
    baseline_id = bgs.publish("app", "1")
    bgs.delays[baseline_id] = 0.3
    clock = Clock()
    baselines = verifier(bgs, clock)
    assert baselines.cached(baseline_id) is None
    with ThreadPoolExecutor(4) as pool:  # asked for at once: one fetch
        assert {b.id for b in pool.map(lambda _: baselines.verify(baseline_id), range(4))} == {baseline_id}
    baselines.verify(baseline_id)
    assert bgs.requests == [baseline_id]
    assert baselines.cached(baseline_id) == baselines.verify(baseline_id)
    clock.now = CACHE_SECONDS + 1
    assert baselines.cached(baseline_id) is None  # expired: `verify` would ask the BGS
    baselines.verify(baseline_id)
    assert bgs.requests == [baseline_id, baseline_id]
    with pytest.raises(BaselineError):  # refusals are not kept: a baseline published later is found
        baselines.verify("app@2")
    bgs.publish("app", "2")
    assert baselines.verify("app@2").measurements == MEASUREMENTS


class Fixed:
    """A verifier that returns one baseline."""

    def __init__(self, measurements: ExpectedMeasurements) -> None:
        self.baseline = VerifiedBaseline("sha256:" + "0" * 64, measurements)

    def verify(self, reference: str) -> VerifiedBaseline:
        return self.baseline

    def cached(self, reference: str) -> VerifiedBaseline | None:
        return self.baseline


def spec(tee: str = "tdx", initdata: str = INITDATA) -> ConfidentialWorkloadSpec:
    template = {"containers": [{"name": "app", "image": "r/app@sha256:" + "cd" * 32}]}
    return ConfidentialWorkloadSpec.model_validate(
        {"tee": tee, "baseline": "app@1", "initdata": initdata, "template": template}
    )


def test_initdata_must_hash_to_the_register_the_baseline_expects() -> None:
    assert verify_baseline(Fixed(MEASUREMENTS), spec())[0].status == "True"
    assert verify_baseline(Fixed(SNP), spec("snp"))[0].status == "True"
    other = INITDATA.replace("true", "false")
    digest = hashlib.sha384(other.encode()).hexdigest()
    for measurements, tee, register, expected in [
        (MEASUREMENTS, "tdx", "MRCONFIGID", MEASUREMENTS.mrconfigid),
        (SNP, "snp", "HOST_DATA", SNP.host_data),
    ]:
        outcome, baseline = verify_baseline(Fixed(measurements), spec(tee, other))
        assert (outcome.status, outcome.reason, baseline) == ("False", "InitdataMismatch", None)
        assert f"hashes to {register} {digest[: 96 if tee == 'tdx' else 64]}" in outcome.message
        assert f"expects {expected}" in outcome.message
    sha256 = INITDATA.replace('"sha384"', '"sha256"')  # the algorithm the document declares
    outcome, _ = verify_baseline(Fixed(MEASUREMENTS), spec("tdx", sha256))
    assert f"MRCONFIGID {hashlib.sha256(sha256.encode()).hexdigest()}{'00' * 16}" in outcome.message
    unmeasured = MEASUREMENTS.model_copy(update={"mrconfigid": None})
    outcome, _ = verify_baseline(Fixed(unmeasured), spec())
    assert outcome.reason == "InitdataMismatch" and "expects none (it does not measure initdata)" in outcome.message
    outcome, _ = verify_baseline(Fixed(MEASUREMENTS), spec("tdx", "not = [toml"))
    assert (outcome.status, outcome.reason) == ("False", "InitdataMalformed")
    assert outcome.message.startswith("spec.initdata: not a TOML document")
