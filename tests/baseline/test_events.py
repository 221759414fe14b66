"""The RTMR event rules against genuine CCEL logs, and the rules themselves.

Two genuine logs from the corpus: go-tdx-guest's `ccel_data.dat` (a Google COS guest booting
shim and GRUB: RTMR1's EV_EFI_ACTION and EV_SEPARATOR events carry their data) and trustee's
`CCEL_data_ovmf` (an OVMF direct kernel boot, as Kata does: the kernel's load event, and the EFI
stub's tagged LoadOptions and initrd events in RTMR2, whose data describe but do not contain
what was measured).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from teeplane.attestation.eventlog import TPM_ALG_SHA384, Event, parse_event_log
from teeplane.baseline.measure import events
from teeplane.baseline.measure.events import (
    CALLING_EFI_APPLICATION,
    EV_EFI_ACTION,
    EV_EFI_BOOT_SERVICES_APPLICATION,
    EV_EVENT_TAG,
    EV_SEPARATOR,
    EXIT_BOOT_SERVICES_INVOCATION,
    EXIT_BOOT_SERVICES_SUCCEEDED,
    BootEvent,
    sha384,
)


def register(log: Path, rtmr: int) -> list[Event]:
    return [e for e in parse_event_log(log.read_bytes()).events if e.index == rtmr + 1]


def logged(event: Event) -> tuple[int, bytes, bytes]:
    return event.event_type, event.digests[TPM_ALG_SHA384], event.data


def ours(event: BootEvent) -> tuple[int, bytes, bytes]:
    return event.event_type, event.digest, event.data


@pytest.mark.corpus
def test_rtmr1_actions_and_separator_reproduce_the_google_cos_log(corpus: Path) -> None:
    rtmr1 = register(corpus / "tdx/go-tdx-guest/ccel/ccel_data.dat", 1)
    actions = [logged(e) for e in rtmr1 if e.event_type == EV_EFI_ACTION]
    assert actions == [
        ours(events.efi_action(1, CALLING_EFI_APPLICATION)),
        ours(events.efi_action(1, EXIT_BOOT_SERVICES_INVOCATION)),
        ours(events.efi_action(1, EXIT_BOOT_SERVICES_SUCCEEDED)),
    ]
    separators = [logged(e) for e in rtmr1 if e.event_type == EV_SEPARATOR]
    assert separators == [ours(events.separator(1))]
    # current edk2 measures the separator into RTMR1 right after "Calling EFI Application"
    assert [e.event_type for e in rtmr1[:2]] == [EV_EFI_ACTION, EV_SEPARATOR]


@pytest.mark.corpus
def test_direct_boot_events_reproduce_the_ovmf_log(corpus: Path) -> None:
    log = corpus / "tdx/trustee/CCEL_data_ovmf"
    rtmr1, rtmr2 = register(log, 1), register(log, 2)
    # this older TDVF puts the separator into RTMR0; RTMR1 is the kernel, then the three actions
    assert [e.event_type for e in rtmr1] == [EV_EFI_BOOT_SERVICES_APPLICATION] + [EV_EFI_ACTION] * 3
    assert [logged(e) for e in rtmr1[1:]] == [
        ours(events.efi_action(1, action))
        for action in (CALLING_EFI_APPLICATION, EXIT_BOOT_SERVICES_INVOCATION, EXIT_BOOT_SERVICES_SUCCEEDED)
    ]
    kernel = rtmr1[0].data
    assert kernel[32:] == events.kernel_device_path()  # VenMedia(QEMU kernel loader FS)/File("kernel")/End
    assert int.from_bytes(kernel[24:32], "little") == len(events.kernel_device_path())
    # RTMR2: the EFI stub's tagged events, with the event data our rules write
    digest = bytes(48)
    cmdline = events.kernel_cmdline(b"console=hvc0", initrd=True)
    initrd = events.initrd_event(digest)
    assert cmdline is not None
    assert [(e.event_type, e.data) for e in rtmr2] == [(EV_EVENT_TAG, cmdline.data), (EV_EVENT_TAG, initrd.data)]


@pytest.mark.corpus
def test_the_grub_command_line_follows_another_rule(corpus: Path) -> None:
    """The COS log boots through GRUB, which measures its command line as ASCII without prefix
    or NUL, not as the EFI stub's UTF-16 LoadOptions: that log cannot check the direct-boot rule."""
    rtmr2 = register(corpus / "tdx/go-tdx-guest/ccel/ccel_data.dat", 2)
    line = next(e for e in rtmr2 if e.data.startswith(b"kernel_cmdline: "))
    text = line.data.removeprefix(b"kernel_cmdline: ").rstrip(b"\0")
    assert line.digests[TPM_ALG_SHA384] == sha384(text)
    assert line.digests[TPM_ALG_SHA384] != events.kernel_cmdline(text, initrd=False).digest  # type: ignore[union-attr]


def test_load_options_are_widened_with_the_initrd_option_and_a_nul() -> None:
    assert events.load_options(b"console=hvc0", initrd=True) == "console=hvc0 initrd=initrd\0".encode("utf-16-le")
    assert events.load_options(b"console=hvc0", initrd=False) == "console=hvc0\0".encode("utf-16-le")
    assert events.load_options(b"", initrd=True) == " initrd=initrd\0".encode("utf-16-le")
    assert events.load_options(b"", initrd=False) == b""
    assert events.kernel_cmdline(b"", initrd=False) is None
    # OVMF widens each byte: a UTF-8 command line becomes one code unit per byte
    assert events.load_options("é".encode(), initrd=False) == b"\xc3\x00\xa9\x00\x00\x00"
    event = events.kernel_cmdline(b"quiet", initrd=False)
    assert event is not None and event.digest == sha384("quiet\0".encode("utf-16-le"))


def test_runtime_events_are_sha384_of_their_data() -> None:
    image = events.container_image("registry.example/app@sha256:" + "ab" * 32)
    assert (image.rtmr, image.digest) == (3, sha384(image.data))
    assert image.data == b"registry.example/app@sha256:" + b"ab" * 32
    assert events.separator(1).data == bytes(4)
    assert events.initrd_event(b"\x01" * 48).digest == b"\x01" * 48
