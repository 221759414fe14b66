"""CCEL event logs (TCG2 crypto-agile format): parse, replay into TDX RTMRs, compare with a quote.

The log opens with a legacy TCG_PCR_EVENT carrying the "Spec ID Event03" structure, which declares
the digest algorithms and their sizes; TCG_PCR_EVENT2 records follow until the end of the data or
the padding (0xFF or 0x00 bytes) that fills the rest of the log area. In a CCEL the record index
is the CC measurement register: 0 = MRTD, 1..4 = RTMR0..3 (UEFI 2.10, section 38.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from teeplane.attestation.binary import Reader
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError

EV_NO_ACTION = 0x00000003
TPM_ALG_SHA384 = 0x000C
RTMR_COUNT = 4
RTMR_SIZE = 48
#: Highest CC measurement register index in a TDX CCEL (RTMR3).
MAX_MR_INDEX = 4

_WHAT = "eventlog"
_SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
#: Digest sizes of the TPM algorithms whose size is fixed; the Spec ID event must agree.
_STANDARD_DIGEST_SIZES = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64, 0x0012: 32}
_FF_PADDING_PROBE = 8  # index + event type: 0xFFFFFFFF is no register index
_ZERO_PADDING_PROBE = 12  # index + event type + digest count: an event carries at least one digest

#: Names of the event types of the TCG PC Client Platform Firmware Profile, for readable output.
EVENT_TYPE_NAMES: dict[int, str] = {
    0x00000000: "EV_PREBOOT_CERT",
    0x00000001: "EV_POST_CODE",
    0x00000002: "EV_UNUSED",
    0x00000003: "EV_NO_ACTION",
    0x00000004: "EV_SEPARATOR",
    0x00000005: "EV_ACTION",
    0x00000006: "EV_EVENT_TAG",
    0x00000007: "EV_S_CRTM_CONTENTS",
    0x00000008: "EV_S_CRTM_VERSION",
    0x00000009: "EV_CPU_MICROCODE",
    0x0000000A: "EV_PLATFORM_CONFIG_FLAGS",
    0x0000000B: "EV_TABLE_OF_DEVICES",
    0x0000000C: "EV_COMPACT_HASH",
    0x0000000D: "EV_IPL",
    0x0000000E: "EV_IPL_PARTITION_DATA",
    0x0000000F: "EV_NONHOST_CODE",
    0x00000010: "EV_NONHOST_CONFIG",
    0x00000011: "EV_NONHOST_INFO",
    0x00000012: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000000: "EV_EFI_EVENT_BASE",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
    0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One TCG_PCR_EVENT2 record: register index, type, digests by TPM algorithm ID, event data.

    `offset` is where the record starts in the log.
    """

    index: int
    event_type: int
    digests: dict[int, bytes]
    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class EventLog:
    """The events of a log (the Spec ID header excluded) and the digest sizes it declares."""

    events: tuple[Event, ...]
    digest_sizes: dict[int, int]


@dataclass(frozen=True, slots=True)
class RtmrResult:
    """One RTMR: the value the event log replays to and the value the quote holds."""

    register: int
    replayed: bytes
    observed: bytes

    @property
    def match(self) -> bool:
        """The replayed value equals the quoted one."""
        return self.replayed == self.observed


@dataclass(frozen=True, slots=True)
class RtmrComparison:
    """Replayed RTMR0..3 against a quote's; `events` is how many events the log had, when known."""

    registers: tuple[RtmrResult, ...]
    events: int | None = None

    @property
    def all_match(self) -> bool:
        """Every register replays to the quoted value."""
        return all(result.match for result in self.registers)

    def to_json(self) -> dict[str, Any]:
        """The comparison as the JSON object the CLI prints under `eventlog`."""
        out: dict[str, Any] = {"replayed": True, "events": self.events}
        for result in self.registers:
            out[f"rtmr{result.register}"] = {
                "match": result.match,
                "replayed": result.replayed.hex(),
                "quote": result.observed.hex(),
            }
        return out

    def errors(self) -> list[AppraisalError]:
        """One `eventlog.rtmr_mismatch` error per register that does not match."""
        return [
            AppraisalError(
                Code.EVENTLOG_RTMR_MISMATCH,
                f"RTMR{result.register}: the event log replays to {result.replayed.hex()}, "
                f"the quote has {result.observed.hex()}",
                where=f"rtmr{result.register}",
            )
            for result in self.registers
            if not result.match
        ]


def event_type_name(event_type: int) -> str:
    """The EV_* name of an event type, or its hex value when it has none here."""
    return EVENT_TYPE_NAMES.get(event_type, f"{event_type:#010x}")


def parse_event_log(data: bytes) -> EventLog:
    """Parse a CCEL / TCG2 crypto-agile event log, stopping at the padding after the last event.

    Raises EvidenceFormatError (`eventlog.malformed`, with the offset) for anything unreadable: a
    truncated record, a register index above RTMR3, a digest algorithm the Spec ID event does not
    declare, a bad Spec ID event.
    """
    reader = Reader(data, _WHAT, Code.EVENTLOG_MALFORMED)
    digest_sizes = _parse_spec_id_event(reader)
    events: list[Event] = []
    while not _at_padding(data, reader.pos):
        events.append(_parse_event(reader, digest_sizes))
    return EventLog(tuple(events), digest_sizes)


def replay_rtmrs(log: EventLog) -> tuple[bytes, bytes, bytes, bytes]:
    """RTMR0..3 as the log extends them: from zeros, RTMR = SHA-384(RTMR || event SHA-384 digest).

    Events of index 1..4 extend RTMR0..3, except EV_NO_ACTION; MRTD (index 0) events extend none.
    Raises EvidenceFormatError if an extending event carries no SHA-384 digest.
    """
    rtmrs = [bytes(RTMR_SIZE)] * RTMR_COUNT
    for event in log.events:
        if not 1 <= event.index <= MAX_MR_INDEX or event.event_type == EV_NO_ACTION:
            continue
        register = event.index - 1
        digest = event.digests.get(TPM_ALG_SHA384)
        if digest is None:
            raise EvidenceFormatError(
                Code.EVENTLOG_MALFORMED,
                f"{_WHAT}: the event at offset {event.offset} extends RTMR{register} but carries no SHA-384 digest",
                where=_where(event.offset),
            )
        rtmrs[register] = hashlib.sha384(rtmrs[register] + digest).digest()
    return rtmrs[0], rtmrs[1], rtmrs[2], rtmrs[3]


def compare_rtmrs(replayed: Sequence[bytes], observed: Sequence[bytes], *, events: int | None = None) -> RtmrComparison:
    """Compare replayed RTMR0..3 with a quote's RTMR0..3; `events` is the log's event count."""
    if len(replayed) != RTMR_COUNT or len(observed) != RTMR_COUNT:
        raise ValueError(f"expected {RTMR_COUNT} replayed and {RTMR_COUNT} observed RTMRs")
    return RtmrComparison(
        tuple(
            RtmrResult(register, bytes(mine), bytes(theirs))
            for register, (mine, theirs) in enumerate(zip(replayed, observed, strict=True))
        ),
        events,
    )


def _where(offset: int) -> str:
    return f"{_WHAT}+{offset:#x}"


def _malformed(message: str, offset: int) -> EvidenceFormatError:
    return EvidenceFormatError(Code.EVENTLOG_MALFORMED, f"{_WHAT}: {message} at offset {offset}", where=_where(offset))


def _parse_spec_id_event(reader: Reader) -> dict[int, int]:
    """Read the legacy first record and its Spec ID Event03; the declared digest sizes by algorithm."""
    start = reader.pos
    reader.u32("Spec ID event PCR index")
    event_type = reader.u32("Spec ID event type")
    if event_type != EV_NO_ACTION:
        raise _malformed(f"the first event has type {event_type:#x}, not EV_NO_ACTION", start)
    reader.skip(20, "Spec ID event SHA-1 digest")
    spec = reader.sub(reader.u32("Spec ID event size"), "Spec ID event")
    if spec.bytes(len(_SPEC_ID_SIGNATURE), "Spec ID signature") != _SPEC_ID_SIGNATURE:
        raise _malformed("the first event is not a 'Spec ID Event03' (not a crypto-agile log)", start)
    spec.skip(8, "platform class, spec version and uintn size")
    count_offset = spec.pos
    algorithm_count = spec.u32("number of algorithms")
    if algorithm_count == 0:
        raise _malformed("the Spec ID event declares no digest algorithm", count_offset)
    digest_sizes: dict[int, int] = {}
    for _ in range(algorithm_count):
        entry_offset = spec.pos
        algorithm = spec.u16("algorithm ID")
        size = spec.u16("digest size")
        if algorithm in digest_sizes:
            raise _malformed(f"digest algorithm {algorithm:#06x} is declared twice", entry_offset)
        if size == 0 or _STANDARD_DIGEST_SIZES.get(algorithm, size) != size:
            raise _malformed(f"digest algorithm {algorithm:#06x} is declared {size} bytes long", entry_offset)
        digest_sizes[algorithm] = size
    spec.skip(spec.bytes(1, "vendor info size")[0], "vendor info")
    if spec.remaining:
        raise _malformed(f"the Spec ID event has {spec.remaining} bytes after its vendor info", spec.pos)
    return digest_sizes


def _at_padding(data: bytes, offset: int) -> bool:
    """Whether the log ends here: no data left, or the 0xFF / 0x00 fill after the last event."""
    if offset >= len(data):
        return True
    ff_probe = data[offset : offset + _FF_PADDING_PROBE]
    zero_probe = data[offset : offset + _ZERO_PADDING_PROBE]
    return ff_probe == b"\xff" * len(ff_probe) or zero_probe == bytes(len(zero_probe))


def _parse_event(reader: Reader, digest_sizes: dict[int, int]) -> Event:
    """Read one TCG_PCR_EVENT2 record."""
    start = reader.pos
    index = reader.u32("event index")
    if index > MAX_MR_INDEX:
        raise _malformed(f"measurement register index {index} is not MRTD or RTMR0..3", start)
    event_type = reader.u32("event type")
    count_offset = reader.pos
    digest_count = reader.u32("digest count")
    if digest_count == 0:
        raise _malformed("an event carries no digest", count_offset)
    digests: dict[int, bytes] = {}
    for _ in range(digest_count):
        digest_offset = reader.pos
        algorithm = reader.u16("digest algorithm")
        size = digest_sizes.get(algorithm)
        if size is None:
            raise _malformed(f"digest algorithm {algorithm:#06x} is not declared in the Spec ID event", digest_offset)
        if algorithm in digests:
            raise _malformed(f"digest algorithm {algorithm:#06x} appears twice in one event", digest_offset)
        digests[algorithm] = reader.bytes(size, f"digest {algorithm:#06x}")
    event_data = reader.bytes(reader.u32("event size"), "event data")
    return Event(index, event_type, digests, event_data, start)
