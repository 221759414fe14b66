"""Baselines for tests: fixed measurements and metadata, signed envelopes, logged bundles."""

from __future__ import annotations

from datetime import UTC, datetime

from securesystemslib.signer import Signer

from teeplane.baseline import dsse
from teeplane.baseline.bundle import BaselineBundle
from teeplane.baseline.document import PAYLOAD_TYPE, BaselineDocument, BaselineMetadata, build_document
from teeplane.baseline.measurements import Artifact, ExpectedMeasurements, MeasuredEvent
from teeplane.baseline.tlog.storage import TileLog

#: Inside the validity of `metadata()`.
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def measurements(seed: int = 0) -> ExpectedMeasurements:
    """TDX measurements with artifacts and events; every seed gives other values."""
    h = f"{seed:04x}"
    return ExpectedMeasurements(
        tee="tdx",
        mrtd=(h + "a1" * 46),
        rtmrs={"rtmr1": h + "b1" * 46, "rtmr0": h + "b0" * 46},
        events={
            "rtmr1": [MeasuredEvent(digest=h + "c1" * 46, description="kernel (Authenticode)")],
            "rtmr2": [MeasuredEvent(digest=h + "c2" * 46, description="cmdline"), MeasuredEvent(digest="c3" * 48)],
        },
        mrconfigid=h + "d0" * 46,
        artifacts=[
            Artifact(name="firmware", uri="file:///build/OVMF.fd", digest={"sha384": "e0" * 48}),
            Artifact(name="kernel", digest={"sha256": "e1" * 32, "sha384": "e2" * 48}),
        ],
    )


def metadata(seed: int = 0) -> BaselineMetadata:
    """Metadata with every field set, valid 2025-01-01 to 2030-01-01, for `measurements(seed)`
    (version 1.2.<3 + seed>: a version names one set of measurements)."""
    return BaselineMetadata.model_validate(
        {
            "name": "payments",
            "version": f"1.2.{3 + seed}",
            "vmm": {"type": "qemu", "version": "9.1.0", "machine": "q35", "vcpus": 2, "memory_mib": 2048},
            "builder": {"id": "https://github.com/teeplane/teeplane/.github/workflows/baseline.yml@refs/heads/main"},
            "source": {"uri": "git+https://github.com/teeplane/payments", "digest": {"gitCommit": "ab" * 20}},
            "validity": {"notBefore": "2025-01-01T00:00:00Z", "notAfter": "2030-01-01T00:00:00Z"},
        }
    )


def document(seed: int = 0) -> BaselineDocument:
    """The baseline document of `measurements(seed)` with `metadata()`."""
    return build_document(measurements(seed), metadata(seed))


def signed(seed: int, signer: Signer) -> dsse.Envelope:
    """`document(seed)` signed by `signer`."""
    return dsse.sign(document(seed).payload, PAYLOAD_TYPE, [signer])


def logged(log: TileLog, envelope: dsse.Envelope) -> BaselineBundle:
    """Append `envelope` to `log` and return its bundle under the new checkpoint."""
    (index,) = log.append([envelope.canonical()])
    return BaselineBundle(envelope=envelope, proof=log.tlog_proof(index).decode())
