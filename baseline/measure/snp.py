"""The SEV-SNP launch digest, computed by the `sev-snp-measure` package (IBM/virtee).

The launch digest is the chain of SNP_LAUNCH_UPDATE page digests AMD's firmware builds while the
VMM loads the guest (SEV-SNP ABI §8.17): the OVMF image as normal pages, then its SEV metadata
sections (zero pages, secrets page, CPUID page, the kernel-hashes page with the SHA-256 of the
kernel, initrd and command line when QEMU direct-boots with kernel-hashes=on), then one VMSA page
per vCPU. `sev-snp-measure` implements exactly this for QEMU, EC2 and GCE; this module only feeds
it the artifacts (it reads files, so they are written to a temporary directory) and types its errors.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sevsnpmeasure import guest, vcpu_types
from sevsnpmeasure.sev_mode import SevMode
from sevsnpmeasure.vmm_types import VMMType

from teeplane.baseline.errors import BuildInputError, Code

VCPU_TYPES = tuple(vcpu_types.CPU_SIGS)
VMM_TYPES = ("QEMU", "ec2", "gce")


def snp_launch_digest(
    firmware: bytes,
    *,
    vcpus: int,
    vcpu_type: str,
    guest_features: int,
    vmm: str = "QEMU",
    kernel: bytes | None = None,
    initrd: bytes | None = None,
    cmdline: str = "",
) -> bytes:
    """The 48-byte launch digest of an SEV-SNP guest booting `firmware` (and a kernel, if given)."""
    if vcpu_type not in vcpu_types.CPU_SIGS:
        raise BuildInputError(Code.SNP_MEASURE_FAILED, f"unknown vCPU type {vcpu_type!r}", where="snp.vcpu_type")
    with tempfile.TemporaryDirectory(prefix="teeplane-snp-") as directory:
        paths = {name: _write(Path(directory), name, data) for name, data in _files(firmware, kernel, initrd).items()}
        try:
            digest: bytes = guest.calc_launch_digest(
                SevMode.SEV_SNP,
                vcpus,
                vcpu_types.CPU_SIGS[vcpu_type],
                paths["firmware"],
                paths.get("kernel", ""),
                paths.get("initrd", ""),
                cmdline,
                guest_features,
                vmm_type=VMMType[vmm],
            )
        except (RuntimeError, ValueError, AssertionError) as e:
            raise BuildInputError(Code.SNP_MEASURE_FAILED, f"sev-snp-measure refused the firmware: {e}") from None
    return digest


def _files(firmware: bytes, kernel: bytes | None, initrd: bytes | None) -> dict[str, bytes]:
    files = {"firmware": firmware}
    if kernel is not None:
        files["kernel"] = kernel
        if initrd is not None:
            files["initrd"] = initrd
    return files


def _write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)
