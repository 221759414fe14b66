"""A whole TDX direct boot: MRTD, MRCONFIGID and every RTMR event, in the order a TD measures them.

The rules are those of `tdvf` (MRTD), `initdata` (MRCONFIGID), `authenticode` and `setup_header`
(the kernel), `events` (RTMR1..3) and `golden` (RTMR0). Order, as in a CCEL of an OVMF direct
boot: RTMR0's events, the kernel (LoadImage), "Calling EFI Application from Boot Option", the
separator (when the firmware puts it in RTMR1), the kernel command line and initrd (the EFI
stub), the Exit Boot Services pair, then the container images (RTMR3).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from teeplane.baseline.measure import events
from teeplane.baseline.measure.authenticode import authenticode_sha384
from teeplane.baseline.measure.events import BootEvent
from teeplane.baseline.measure.initdata import MRCONFIGID_SIZE, fit, initdata_digest
from teeplane.baseline.measure.setup_header import qemu_patched_kernel
from teeplane.baseline.measure.tdvf import PageOrder, tdvf_mrtd

RTMR_SIZE = 48
#: QEMU 8 (with its KVM) adds all pages of a section before extending them; QEMU 10 stopped
#: patching the setup header of the kernel the firmware measures.
_SINGLE_PASS_SINCE = (9, 0)
_UNPATCHED_SINCE = (10, 0)


class Separator(StrEnum):
    """Where the firmware measures the ReadyToBoot EV_SEPARATOR: RTMR1 (current edk2) or RTMR0 (older TDVF)."""

    RTMR1 = "rtmr1"
    RTMR0 = "rtmr0"


@dataclass(frozen=True, slots=True)
class TdxLayout:
    """What the VMM and firmware decide beyond the artifacts."""

    page_order: PageOrder
    patch_setup_header: bool
    memory_size: int
    separator: Separator = Separator.RTMR1

    @classmethod
    def for_qemu(cls, version: tuple[int, int], memory_size: int, separator: Separator = Separator.RTMR1) -> TdxLayout:
        """The layout of QEMU `version` (major, minor) with `memory_size` bytes of guest memory."""
        order = PageOrder.SINGLE_PASS if version >= _SINGLE_PASS_SINCE else PageOrder.TWO_PASS
        return cls(order, version < _UNPATCHED_SINCE, memory_size, separator)


@dataclass(frozen=True, slots=True)
class Initrd:
    """An initrd by its SHA-384 and size (its bytes are not needed)."""

    sha384: bytes
    size: int


@dataclass(frozen=True, slots=True)
class TdxArtifacts:
    """The inputs of a TD boot; `rtmr0` holds the events of a golden log, if any."""

    firmware: bytes
    kernel: bytes
    layout: TdxLayout
    cmdline: bytes = b""
    initrd: Initrd | None = None
    initdata: bytes | None = None
    images: tuple[str, ...] = ()
    rtmr0: tuple[BootEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class TdxBoot:
    """What a TD booted from the artifacts measures."""

    mrtd: bytes
    mrconfigid: bytes
    events: tuple[BootEvent, ...]

    def register_events(self, rtmr: int) -> list[BootEvent]:
        """The events extending RTMR `rtmr`, in order."""
        return [event for event in self.events if event.rtmr == rtmr]

    def rtmr(self, rtmr: int) -> bytes:
        """The final value of RTMR `rtmr`: from zeros, RTMR = SHA-384(RTMR || digest) per event."""
        value = bytes(RTMR_SIZE)
        for event in self.register_events(rtmr):
            value = hashlib.sha384(value + event.digest).digest()
        return value


def boot_tdx(artifacts: TdxArtifacts) -> TdxBoot:
    """MRTD, MRCONFIGID and the RTMR events of a TD booted from `artifacts` (see the module docstring)."""
    layout = artifacts.layout
    kernel = artifacts.kernel
    if layout.patch_setup_header:
        initrd_size = artifacts.initrd.size if artifacts.initrd else None
        kernel = qemu_patched_kernel(
            kernel, cmdline=artifacts.cmdline, initrd_size=initrd_size, memory_size=layout.memory_size
        )
    boot: list[BootEvent] = [*artifacts.rtmr0, events.kernel_image(authenticode_sha384(kernel), len(kernel))]
    boot.append(events.efi_action(1, events.CALLING_EFI_APPLICATION))
    if layout.separator is Separator.RTMR1:
        boot.append(events.separator(1))
    cmdline = events.kernel_cmdline(artifacts.cmdline, initrd=artifacts.initrd is not None)
    if cmdline is not None:
        boot.append(cmdline)
    if artifacts.initrd is not None:
        boot.append(events.initrd_event(artifacts.initrd.sha384))
    boot.append(events.efi_action(1, events.EXIT_BOOT_SERVICES_INVOCATION))
    boot.append(events.efi_action(1, events.EXIT_BOOT_SERVICES_SUCCEEDED))
    boot.extend(events.container_image(image) for image in artifacts.images)
    initdata = artifacts.initdata
    mrconfigid = bytes(MRCONFIGID_SIZE) if initdata is None else fit(initdata_digest(initdata), MRCONFIGID_SIZE)
    return TdxBoot(tdvf_mrtd(artifacts.firmware, layout.page_order), mrconfigid, tuple(boot))
