"""Benchmark: full DCAP appraisal of genuine TDX quotes, on one core.

Measured in one run, on the same quotes:

* `limit`: the bare cost of the two ECDSA P-256 verifications every appraisal needs (quote
  signature by the attestation key, QE report signature by the PCK key), keys preloaded;
* `teeplane warm`: parse + full appraisal with warm caches (collateral and PCK chain prepared);
* `dcap-qvl`: `dcap_qvl.verify` (Phala's Rust verifier, PyPI `dcap-qvl`) on the same quotes;
* `teeplane cold`: single appraisals from raw quote and collateral bytes with every cache cleared.

Usage: python bench/verify_quote.py [--seconds 3] [--cold-runs 200] [--json]
Needs the corpus at ../shared/testdata/attestation (or TEEPLANE_TESTDATA) and `dcap-qvl`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dcap_qvl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from teeplane.attestation.certs import load_certificates, p256_key, raw_to_der_signature
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle, load_pcs_files
from teeplane.attestation.tdx.prepared import clear_caches
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import intel_root

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this file
from loadgen import cpu_model

REPO = Path(__file__).resolve().parent.parent
TDX = Path(os.environ.get("TEEPLANE_TESTDATA", REPO.parent / "shared" / "testdata")) / "attestation" / "tdx"
ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True)
class Sample:
    """A genuine quote with the raw bytes of its collateral and the time to appraise it at."""

    name: str
    quote: bytes
    load_collateral: Callable[[], Collateral]
    at: datetime


def _files(*names: str) -> Callable[[], Collateral]:
    tcb, qe, chain, pck_crl, root_crl = (TDX / n for n in names)
    raw = [p.read_bytes() for p in (tcb, qe, chain, pck_crl, root_crl)]
    return lambda: load_pcs_files(*raw)


def samples() -> list[Sample]:
    """The corpus quotes that have complete collateral (chains, CRLs, TCB Info, QE identity)."""
    bundle = (TDX / "dcap-qvl/tdx_quote_collateral.json").read_bytes()
    solana = _files(
        "automata/solana_tcb_info_v3_with_tdx_module.json",
        "automata/solana_qe_identity.json",
        "automata/solana_signing.pem",
        "automata/solana_pck_platform_crl.der",
        "automata/solana_intel_root_ca_crl.der",
    )
    june, july = datetime(2025, 6, 25, tzinfo=UTC), datetime(2025, 7, 10, tzinfo=UTC)
    return [
        Sample("dcap-qvl/tdx_quote", (TDX / "dcap-qvl/tdx_quote").read_bytes(), lambda: load_bundle(bundle), june),
        Sample(
            "automata/solana_quote_tdx.bin",
            (TDX / "automata/solana_quote_tdx.bin").read_bytes(),
            solana,
            july,
        ),
        Sample(
            "go-tdx-guest/ccel/cos-113-tdx-quote.dat",
            (TDX / "go-tdx-guest/ccel/cos-113-tdx-quote.dat").read_bytes(),
            solana,
            july,
        ),
    ]


def to_dcap_qvl(collateral: Collateral, pck_ca_pem: bytes) -> dcap_qvl.QuoteCollateralV3:
    """The same collateral in dcap-qvl's form (the PCK CRL issuer chain is the quote's PCK CA + root)."""
    assert collateral.pck_crl is not None and collateral.root_ca_crl is not None
    return dcap_qvl.QuoteCollateralV3(
        pck_crl_issuer_chain=(collateral.pck_crl_chain or pck_ca_pem).decode(),
        root_ca_crl=_der(collateral.root_ca_crl),
        pck_crl=_der(collateral.pck_crl),
        tcb_info_issuer_chain=collateral.tcb_info_chain.decode(),
        tcb_info=collateral.tcb_info.raw.decode(),
        tcb_info_signature=collateral.tcb_info.signature,
        qe_identity_issuer_chain=collateral.qe_identity_chain.decode(),
        qe_identity=collateral.qe_identity.raw.decode(),
        qe_identity_signature=collateral.qe_identity.signature,
    )


def _der(crl: bytes) -> bytes:
    try:
        return bytes.fromhex(crl.decode())
    except ValueError:
        return crl


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn` over about `seconds` (after a short warm-up)."""
    for _ in range(50):
        fn()
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        calls += 100
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)


def round_robin(fns: list[Callable[[], object]]) -> Callable[[], None]:
    """One call of each function in turn per call (so every quote weighs the same)."""

    def run() -> None:
        for fn in fns:
            fn()

    return run


def measure(seconds: float, cold_runs: int) -> dict[str, object]:
    """Run every measurement and return the figures."""
    root = intel_root()
    items = samples()
    quotes = [parse_quote(s.quote) for s in items]
    collaterals = [s.load_collateral() for s in items]
    for sample, quote, collateral in zip(items, quotes, collaterals, strict=True):
        assert appraise_quote(quote, collateral, root, sample.at).verified, sample.name

    def two_verifications(quote_bytes: bytes) -> Callable[[], None]:
        q = parse_quote(quote_bytes)
        attestation_key = p256_key(q.attestation_key)
        pck_key = load_certificates(q.pck_chain, "PCK chain")[0].public_key()
        assert isinstance(pck_key, ec.EllipticCurvePublicKey)
        quote_sig, qe_sig = raw_to_der_signature(q.signature), raw_to_der_signature(q.qe_report_signature)
        signed, qe_report = q.signed, q.qe_report.raw

        def run() -> None:
            attestation_key.verify(quote_sig, signed, ECDSA)
            pck_key.verify(qe_sig, qe_report, ECDSA)

        return run

    def warm(sample: Sample, collateral: Collateral) -> Callable[[], None]:
        return lambda: appraise_quote(parse_quote(sample.quote), collateral, root, sample.at) and None

    def dcap(sample: Sample, collateral: Collateral) -> Callable[[], None]:
        chain = load_certificates(parse_quote(sample.quote).pck_chain, "PCK chain")
        pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain[1:])
        dcap_collateral = to_dcap_qvl(collateral, pem)
        now = int(sample.at.timestamp())
        report = dcap_qvl.verify(sample.quote, dcap_collateral, now)
        assert report.status, sample.name
        return lambda: dcap_qvl.verify(sample.quote, dcap_collateral, now) and None

    n = len(items)
    limit = rate(round_robin([two_verifications(s.quote) for s in items]), seconds) * n
    teeplane_warm = rate(round_robin([warm(s, c) for s, c in zip(items, collaterals, strict=True)]), seconds) * n
    dcap_rate = rate(round_robin([dcap(s, c) for s, c in zip(items, collaterals, strict=True)]), seconds) * n

    cold: list[float] = []
    for i in range(cold_runs):
        sample = items[i % n]
        clear_caches()
        start = time.perf_counter()
        result = appraise_quote(parse_quote(sample.quote), sample.load_collateral(), root, sample.at)
        cold.append(time.perf_counter() - start)
        assert result.verified
    cold.sort()
    return {
        "machine": {
            "cpu": cpu_model(),
            "cores_used": 1,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quotes": [s.name for s in items],
        "two_ecdsa_limit_per_s": round(limit),
        "teeplane_warm_per_s": round(teeplane_warm),
        "teeplane_fraction_of_limit": round(teeplane_warm / limit, 3),
        "dcap_qvl_per_s": round(dcap_rate),
        "teeplane_vs_dcap_qvl": round(teeplane_warm / dcap_rate, 2),
        "cold_ms": {
            "p50": round(statistics.median(cold) * 1e3, 3),
            "p90": round(cold[int(0.9 * (len(cold) - 1))] * 1e3, 3),
            "max": round(cold[-1] * 1e3, 3),
            "runs": len(cold),
        },
    }


def main() -> int:
    """Pin to one core, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--cold-runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not TDX.is_dir():
        print(f"corpus not found at {TDX}", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    figures = measure(args.seconds, args.cold_runs)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    cold = figures["cold_ms"]
    assert isinstance(cold, dict)
    print(f"machine: {figures['machine']}")
    print(f"quotes: {', '.join(map(str, figures['quotes']))}")
    print(f"two ECDSA P-256 verifications (limit): {figures['two_ecdsa_limit_per_s']:>8} /s")
    print(
        f"teeplane full appraisal, warm:         {figures['teeplane_warm_per_s']:>8} /s "
        f"({figures['teeplane_fraction_of_limit']:.0%} of the limit)"
    )
    print(
        f"dcap-qvl verify:                       {figures['dcap_qvl_per_s']:>8} /s "
        f"(teeplane is {figures['teeplane_vs_dcap_qvl']}x)"
    )
    print(f"teeplane cold single appraisal:        p50 {cold['p50']} ms, p90 {cold['p90']} ms", end="")
    print(f", max {cold['max']} ms over {cold['runs']} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
