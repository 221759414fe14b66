"""The demo's steps, in simulated mode, against a running development stack (`teeplane dev up`).

A builder measures the example build and publishes its baseline in the BGS's transparency log; an
operator registers the workload at RAS and creates its key at TKS with a release policy, sealing
data with it; a simulated TD boots the build and its agent attests and receives the key, which
opens the sealed data; an outsider verifies the running service; and the same build with one
tampered kernel byte is refused by RAS (no key) and by the outsider, each naming the register.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.baseline.build import measure_recipe
from teeplane.baseline.bundle import BaselineBundle, dump_bundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.document import BaselineMetadata
from teeplane.baseline.example import write_build, write_recipe
from teeplane.baseline.keys import load_log_verifier, load_public_key
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.recipe import load_recipe
from teeplane.baseline.verify import verify_bundle
from teeplane.demo.process import Outcome, simulated_td, teeplane
from teeplane.demo.step import Step
from teeplane.dev.stack import Stack
from teeplane.remote import RemoteError
from teeplane.retry import retrying
from teeplane.tks.client import TksClient
from teeplane.tks.models import CreateKey, KeyKind, ReleasePolicy
from teeplane.tls import trusting

NAMESPACE, NAME = "demo", "ledger"
BASELINE_NAME, BASELINE_VERSION = "ledger", "1.0.0"
KEY_ID, KEY_PATH = "ledger-data-key", "data/key"
SEALED_TEXT = b"ledger entry 42: alice pays bob 10 EUR"
#: Seconds the demo's own calls wait for a service that is briefly unavailable (e.g. a TKS failover).
PATIENCE = 30.0


def run(stack: Stack, workdir: Path) -> Iterator[Step]:
    """The demo's steps; each `Step.ok` says whether the outcome was the expected one."""
    token, tls = stack.admin_token(), trusting(stack.ca_file)
    recipe = write_recipe(write_build(_fresh(workdir / "build")))
    expected = measure_recipe(load_recipe(recipe))
    yield Step("example build measured from its recipe", True, f"{recipe}\n{_registers(expected)}")

    bgs = BgsClient(stack.bgs_url, admin_token=token, verify=tls)
    metadata = BaselineMetadata(name=BASELINE_NAME, version=BASELINE_VERSION)
    record = retrying(lambda: bgs.publish_measurements(expected, metadata), PATIENCE)
    bundle = BaselineBundle(envelope=record.envelope, proof=record.proof)
    bundle_file = workdir / "ledger.baseline.json"
    bundle_file.write_bytes(dump_bundle(bundle))
    signer = load_public_key(stack.bgs_signer_key.read_bytes())
    logged = verify_bundle(bundle, [signer], load_log_verifier(str(stack.bgs_log_key)), datetime.now(UTC))
    yield Step(
        f"baseline {BASELINE_NAME}@{BASELINE_VERSION} signed by the BGS and logged",
        logged.document.id == record.id,
        f"{record.id}\nlog index {logged.index} of {logged.checkpoint.size}; the bundle ({bundle_file.name}) verifies "
        "offline under the pinned signer and log keys",
    )

    ras = RasClient(stack.ras_url, admin_token=token, verify=tls)
    retrying(lambda: ras.put_reference_values(NAMESPACE, NAME, expected.reference_values(record.id)), PATIENCE)
    retrying(lambda: ras.put_policy(NAMESPACE, NAME, AppraisalPolicy(allow_simulated=True)), PATIENCE)
    yield Step(
        f"RAS holds the baseline's reference values for {NAMESPACE}/{NAME}",
        True,
        "MRTD, MRCONFIGID and RTMR1..3 as the baseline gives them; simulated evidence accepted for this workload only",
    )

    sealed_file = workdir / "sealed.bin"
    tks = TksClient(tks_endpoints(stack), admin_token=token, verify=tls)
    version = _create_key_and_seal(tks, record.id, sealed_file)
    yield Step(
        f"key {KEY_ID} created at TKS with a release policy; example data sealed with it",
        True,
        f"version {version}: released only to {NAMESPACE}/{NAME} booted from {record.id[:23]}.., in TDX "
        f"(simulation allowed)\n{sealed_file.stat().st_size} bytes in {sealed_file.name}; the demo kept no copy "
        "of the key",
    )

    with simulated_td(recipe, stack.sim_dir, bundle_file, workdir / "td") as td:
        discovery = EpsClient(td).discovery()
        yield Step(
            "simulated TD booted from the build, serving evidence",
            discovery.baseline_id == record.id and discovery.simulated,
            f"EPS {td}: baseline {discovery.baseline_id}",
        )
        keys_dir = _fresh(workdir / "td" / "keys")
        fetched = _fetch_keys(stack, td, keys_dir)
        key_file = keys_dir / KEY_PATH
        yield Step(
            "the TD's agent attested to RAS and TKS released its key",
            fetched.returncode == 0 and key_file.is_file(),
            f"teeplane agent fetch-keys wrote {key_file} (mode {key_file.stat().st_mode & 0o777:o})"
            if key_file.is_file()
            else _why(fetched),
        )
        if not key_file.is_file():
            return
        opened = _open_sealed(key_file.read_bytes(), sealed_file)
        yield Step("the released key opens the sealed data", opened == SEALED_TEXT, f"plaintext: {opened!r}")
        verified = _verify(stack, td, record.id)
        yield Step(
            "an outsider checks the running service: teeplane verify accepts it",
            verified.returncode == 0,
            _checks(verified),
        )

    tampered = _tampered_copy(workdir / "build", workdir / "tampered")
    with simulated_td(tampered, stack.sim_dir, bundle_file, workdir / "tampered-td") as td:
        keys_dir = _fresh(workdir / "tampered-td" / "keys")
        refused = _fetch_keys(stack, td, keys_dir)
        codes = [e.get("code") for e in refused.errors()]
        yield Step(
            "a TD booted from a tampered kernel: RAS refuses it and no key is released",
            refused.returncode == 1 and "policy.measurement_mismatch" in codes and not any(keys_dir.iterdir()),
            _why(refused),
        )
        outsider = _verify(stack, td, record.id)
        yield Step(
            "teeplane verify refuses it too, naming the register",
            outsider.returncode == 1 and any(str(e.get("where")).endswith("rtmr1") for e in outsider.errors()),
            _why(outsider),
        )


def _fresh(directory: Path) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def _registers(m: ExpectedMeasurements) -> str:
    values = {"MRTD": m.mrtd, "MRCONFIGID": m.mrconfigid, **{k.upper(): v for k, v in sorted(m.rtmrs.items())}}
    return "  ".join(f"{name} {value[:12]}.." for name, value in values.items() if value)


def tks_endpoints(stack: Stack) -> str:
    """Every TKS replica, comma-separated: a client goes on to the next when one is down."""
    return ",".join(stack.tks_urls)


def _create_key_and_seal(tks: TksClient, baseline_id: str, sealed_file: Path) -> int:
    """Create (or replace) the data key with its release policy, seal the example data with it, and
    forget it: from now on only an attested TD gets it from TKS."""
    data_key = AESGCM.generate_key(256)
    policy = ReleasePolicy(workloads=[f"{NAMESPACE}/{NAME}"], baselines=[baseline_id], tee_types=["tdx"],
                           allow_simulated=True)  # fmt: skip
    value = b64url_encode(data_key)

    def create() -> int:
        try:
            return tks.create(CreateKey(id=KEY_ID, kind=KeyKind.SECRET, value=value, policy=policy)).latest
        except RemoteError as error:
            if error.http_status != 409:
                raise
        tks.set_policy(KEY_ID, policy)
        return tks.rotate(KEY_ID, value).latest

    version = retrying(create, PATIENCE)
    nonce = os.urandom(12)
    sealed_file.write_bytes(nonce + AESGCM(data_key).encrypt(nonce, SEALED_TEXT, KEY_ID.encode()))
    return version


def _open_sealed(key: bytes, sealed_file: Path) -> bytes:
    sealed = sealed_file.read_bytes()
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], KEY_ID.encode())


def _fetch_keys(stack: Stack, td: str, keys_dir: Path) -> Outcome:
    return teeplane("agent", "fetch-keys", "--ras", stack.ras_url, "--tks", tks_endpoints(stack), "--eps", td,
                    "--namespace", NAMESPACE, "--name", NAME, "--pod", f"{NAME}-td", "--out-dir", str(keys_dir),
                    "--key", f"{KEY_ID}={KEY_PATH}", "--ca-file", str(stack.ca_file), "--timeout",
                    str(PATIENCE), "--json", cwd=keys_dir.parent)  # fmt: skip


def _verify(stack: Stack, td: str, baseline_id: str) -> Outcome:
    return teeplane("verify", td, "--baseline-id", baseline_id, "--bgs", stack.bgs_url, "--signer-key",
                    str(stack.bgs_signer_key), "--log-key", str(stack.bgs_log_key), "--root", str(stack.sim_root),
                    "--allow-simulated", "--ca-file", str(stack.ca_file), "--json", cwd=stack.state_dir)  # fmt: skip


def _checks(outcome: Outcome) -> str:
    checks = outcome.output.get("checks", [])
    if not checks:
        return _why(outcome)
    passed = sum(1 for c in checks if c.get("ok"))
    baseline = next((c.get("detail") for c in checks if "baseline" in str(c.get("name"))), None)
    return f"{passed}/{len(checks)} checks passed" + (f"; {baseline}" if baseline else "")


def _why(outcome: Outcome) -> str:
    errors = outcome.errors()
    if not errors:
        return f"exit {outcome.returncode}: {outcome.stderr.strip()[-500:]}"
    return "\n".join(f"{e.get('code')} at {e.get('where', '-')}: {_short(str(e.get('message')))}" for e in errors[:3])


def _short(message: str) -> str:
    """`message` with long hex digests cut to their first 16 digits."""
    return re.sub(r"\b([0-9a-f]{16})[0-9a-f]{32,}\b", r"\1..", message)


def _tampered_copy(build: Path, directory: Path) -> Path:
    """The build with one byte of the kernel's code flipped; the recipe beside it."""
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(build, directory)
    kernel = bytearray((directory / "bzImage").read_bytes())
    kernel[0x700] ^= 0x01  # inside .text, which Authenticode covers
    (directory / "bzImage").write_bytes(bytes(kernel))
    return directory / "recipe.yaml"
