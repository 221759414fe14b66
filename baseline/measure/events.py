"""The events a direct-boot TD measures into RTMR1..3, with their digests and event data.

RTMR1 (PCR 2..6), from TDVF (edk2 OvmfPkg TdTcg2Dxe and the DXE measured-boot library):

* EV_EFI_BOOT_SERVICES_APPLICATION for the kernel QEMU hands over (LoadImage, before
  ReadyToBoot): digest = Authenticode SHA-384 of the image, data = UEFI_IMAGE_LOAD_EVENT (u64
  location, u64 length, u64 link-time address, u64 device-path length, device path
  VenMedia(QEMU kernel loader FS)/File("kernel")/End);
* EV_EFI_ACTION "Calling EFI Application from Boot Option" at ReadyToBoot;
* EV_SEPARATOR (data: 4 zero bytes) closing the pre-boot phase: current edk2 extends RTMR1, older
  TDVF builds extended RTMR0 instead (a recipe option);
* EV_EFI_ACTION "Exit Boot Services Invocation" and "Exit Boot Services Returned with Success".

For EV_EFI_ACTION and EV_SEPARATOR the digest is SHA-384 of the event data (the ASCII string
without NUL, the 4 bytes).

RTMR2 (PCR 8..15), from the Linux EFI stub, as EV_EVENT_TAG (data: u32 tag id, u32 size, the
NUL-terminated description):

* "LOADED_IMAGE::LoadOptions" (tag 0x8F3B22ED): digest = SHA-384 of the load options. OVMF makes
  them from QEMU's command line: each byte widened to a UTF-16 code unit, " initrd=initrd"
  appended when there is an initrd, a UTF-16 NUL terminator; no options, no event.
* "Linux initrd" (tag 0x8F3B22EC): digest = SHA-384 of the initrd.

RTMR3 holds TEEPlane's runtime events, one per container image: EV_IPL with data
"<repository>@<digest>" (UTF-8), digest = SHA-384 of the data, as the simulated TD extends it.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass

EV_SEPARATOR = 0x00000004
EV_EVENT_TAG = 0x00000006
EV_IPL = 0x0000000D
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007

CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
EXIT_BOOT_SERVICES_INVOCATION = b"Exit Boot Services Invocation"
EXIT_BOOT_SERVICES_SUCCEEDED = b"Exit Boot Services Returned with Success"
SEPARATOR_DATA = bytes(4)
LOAD_OPTIONS_TAG = 0x8F3B22ED
INITRD_TAG = 0x8F3B22EC
INITRD_OPTION = " initrd=initrd"
#: QEMU_KERNEL_LOADER_FS_MEDIA_GUID: the vendor media node of the kernel OVMF loads for QEMU.
QEMU_KERNEL_LOADER_FS = uuid.UUID("1428f772-b64a-441e-b8c3-9ebdd7f893c7")


@dataclass(frozen=True, slots=True)
class BootEvent:
    """One extension of RTMR `rtmr` (0..3): its event type, digest, event data and a description."""

    rtmr: int
    event_type: int
    digest: bytes
    data: bytes
    description: str


def sha384(data: bytes) -> bytes:
    """SHA-384 of `data`."""
    return hashlib.sha384(data).digest()


def efi_action(rtmr: int, action: bytes) -> BootEvent:
    """An EV_EFI_ACTION event: the action string, its SHA-384."""
    return BootEvent(rtmr, EV_EFI_ACTION, sha384(action), action, f"EV_EFI_ACTION {action.decode()}")


def separator(rtmr: int) -> BootEvent:
    """The EV_SEPARATOR closing the pre-boot phase."""
    return BootEvent(rtmr, EV_SEPARATOR, sha384(SEPARATOR_DATA), SEPARATOR_DATA, "EV_SEPARATOR")


def kernel_device_path() -> bytes:
    """VenMedia(QEMU kernel loader FS)/File("kernel")/End, the device path OVMF gives the kernel."""
    vendor = struct.pack("<BBH", 4, 3, 20) + QEMU_KERNEL_LOADER_FS.bytes_le
    name = "kernel\0".encode("utf-16-le")
    file_path = struct.pack("<BBH", 4, 4, 4 + len(name)) + name
    return vendor + file_path + struct.pack("<BBH", 0x7F, 0xFF, 4)


def kernel_image(authenticode: bytes, image_size: int) -> BootEvent:
    """The kernel as an EV_EFI_BOOT_SERVICES_APPLICATION (location and link address 0: not measured)."""
    path = kernel_device_path()
    data = struct.pack("<QQQQ", 0, image_size, 0, len(path)) + path
    return BootEvent(1, EV_EFI_BOOT_SERVICES_APPLICATION, authenticode, data, "kernel (Authenticode)")


def load_options(cmdline: bytes, *, initrd: bool) -> bytes:
    """The UTF-16 load options OVMF gives the kernel for QEMU's command line bytes (b"" if none)."""
    text = cmdline + (INITRD_OPTION.encode() if initrd else b"")
    return (text.decode("latin-1") + "\0").encode("utf-16-le") if text else b""


def tagged_event(tag: int, description: str) -> bytes:
    """TCG_PCClientTaggedEvent data: tag id, size, the NUL-terminated description."""
    text = description.encode() + b"\0"
    return struct.pack("<II", tag, len(text)) + text


def kernel_cmdline(cmdline: bytes, *, initrd: bool) -> BootEvent | None:
    """The EFI stub's LOADED_IMAGE::LoadOptions event, or None when the kernel gets no options."""
    options = load_options(cmdline, initrd=initrd)
    if not options:
        return None
    data = tagged_event(LOAD_OPTIONS_TAG, "LOADED_IMAGE::LoadOptions")
    return BootEvent(2, EV_EVENT_TAG, sha384(options), data, "kernel command line (LoadOptions, UTF-16)")


def initrd_event(digest: bytes) -> BootEvent:
    """The EFI stub's "Linux initrd" event for an initrd of SHA-384 `digest`."""
    return BootEvent(2, EV_EVENT_TAG, digest, tagged_event(INITRD_TAG, "Linux initrd"), "initrd")


def container_image(reference: str) -> BootEvent:
    """TEEPlane's RTMR3 event for a container image "<repository>@<digest>"."""
    data = reference.encode()
    return BootEvent(3, EV_IPL, sha384(data), data, f"container image {reference}")
