"""The attestation demo: a simulated TD proves what it runs to a verifier that trusts nothing else.

Each step says what it expects and what happened. The demo passes only if every step gives the
expected outcome, refusals included: a verifier that accepts what it should refuse fails it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.pki import SimulationAuthority, pem
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import TrustAnchor, intel_root

#: What the example TD boots, measured the way the simulated TDX module measures it.
EXAMPLE_BOOT = {
    "firmware": b"TEEPlane example TDVF image",
    "initdata": b'algorithm = "sha384"\nversion = "0.1.0"\n[data]\n"policy.rego" = "default allow := true"\n',
    "kernel": b"TEEPlane example kernel",
    "cmdline": "console=hvc0 root=/dev/vda1".encode("utf-16-le"),
    "initrd": b"TEEPlane example initrd",
    "image": b"registry.example/app@sha256:" + hashlib.sha256(b"app").hexdigest().encode(),
}


@dataclass(frozen=True)
class Step:
    """One demo step: what was done, whether the outcome was the expected one, and the evidence."""

    title: str
    ok: bool
    evidence: str


def boot_example_td(authority: SimulationAuthority) -> SimulatedTd:
    """A simulated TD booted from the example artifacts (MRTD, MRCONFIGID, RTMR1..3 events)."""
    td = SimulatedTd(
        authority,
        mrtd=hashlib.sha384(EXAMPLE_BOOT["firmware"]).digest(),
        mrconfigid=hashlib.sha384(EXAMPLE_BOOT["initdata"]).digest(),
    )
    td.extend_rtmr_event(1, EXAMPLE_BOOT["kernel"])
    td.extend_rtmr_event(2, EXAMPLE_BOOT["cmdline"])
    td.extend_rtmr_event(2, EXAMPLE_BOOT["initrd"])
    td.extend_rtmr_event(3, EXAMPLE_BOOT["image"])
    return td


def run(workdir: Path, now: datetime | None = None) -> Iterator[Step]:
    """Run the demo, writing the evidence an outsider would check into `workdir`."""
    now = now or datetime.now(UTC)
    workdir.mkdir(parents=True, exist_ok=True)
    authority = SimulationAuthority.generate(now)
    anchor = TrustAnchor(authority.root_cert, simulated=True)
    collateral_bytes = bundle_json(authority, now)
    collateral = load_bundle(collateral_bytes)
    (workdir / "root.pem").write_bytes(pem(authority.root_cert))
    (workdir / "collateral.json").write_bytes(collateral_bytes)
    yield Step(
        "simulation root and collateral generated",
        True,
        f"root {anchor} written to {workdir / 'root.pem'}, signed TCB Info + QE Identity in collateral.json",
    )

    td = boot_example_td(authority)
    yield Step(
        "simulated TD booted from the example artifacts",
        True,
        f"MRTD {td.mrtd.hex()[:16]}..  MRCONFIGID {td.mrconfigid.hex()[:16]}..  RTMR3 {td.rtmrs[3].hex()[:16]}..",
    )

    nonce = secrets.token_bytes(32)
    quote_bytes = td.quote(hashlib.sha512(nonce).digest())
    (workdir / "quote.bin").write_bytes(quote_bytes)
    yield Step("verifier's nonce bound into a v4 quote", True, f"{len(quote_bytes)} bytes in quote.bin")

    accepted = _appraise(quote_bytes, collateral, anchor, now, Policy(allow_simulated=True))
    bound = accepted.measurements.get("report_data") == hashlib.sha512(nonce).hexdigest()
    yield Step(
        "appraised under the simulation root: accepted, nonce bound",
        accepted.accepted and bound and accepted.simulated,
        _summary(accepted) + f", report_data = SHA-512(nonce): {bound}",
    )

    default_policy = _appraise(quote_bytes, collateral, anchor, now, Policy())
    yield _expect_refusal("the default policy refuses simulated evidence", default_policy, "policy.simulated_rejected")

    under_intel = _appraise(quote_bytes, collateral, intel_root(), now, Policy(allow_simulated=True))
    yield _expect_refusal("under the Intel SGX Root CA it is refused", under_intel, "cert.untrusted_root")

    tampered = bytearray(quote_bytes)
    tampered[48 + 136] ^= 0x01  # first byte of MRTD
    refused = _appraise(bytes(tampered), collateral, anchor, now, Policy(allow_simulated=True))
    yield _expect_refusal("a quote with a tampered MRTD is refused", refused, "quote.signature_invalid")

    stale = _appraise(quote_bytes, collateral, anchor, now.replace(year=now.year + 1), Policy(allow_simulated=True))
    yield _expect_refusal("the same evidence a year later (expired collateral) is refused", stale, "collateral.expired")

    yield Step(
        "an outsider can check the same files",
        True,
        f"teeplane attest verify-quote {workdir / 'quote.bin'} --collateral {workdir / 'collateral.json'} "
        f"--root {workdir / 'root.pem'} --allow-simulated",
    )


def _appraise(quote: bytes, collateral: Collateral, anchor: TrustAnchor, at: datetime, policy: Policy) -> Appraisal:
    return appraise_quote(parse_quote(quote), collateral, anchor, at, policy)


def _expect_refusal(title: str, appraisal: Appraisal, code: str) -> Step:
    codes = [e.code for e in [*appraisal.errors, *appraisal.policy_errors]]
    return Step(title, not appraisal.accepted and code in codes, f"refused with {', '.join(codes) or 'nothing'}")


def _summary(appraisal: Appraisal) -> str:
    passed = sum(c.ok for c in appraisal.checks)
    return (
        f"{passed}/{len(appraisal.checks)} checks passed, TCB {appraisal.tcb_status}, simulated {appraisal.simulated}"
    )
