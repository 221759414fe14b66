"""CCEL event logs of a simulated TD, in the TCG2 crypto-agile format `eventlog.parse_event_log` reads.

The log opens with the legacy TCG_PCR_EVENT carrying a "Spec ID Event03" that declares SHA-384
only; one TCG_PCR_EVENT2 follows per RTMR extension, at CC measurement register index RTMR + 1.
An extension logs its own event type when it recorded one; otherwise one with event data becomes
EV_IPL with that data, a bare digest EV_EVENT_TAG with no data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from teeplane.attestation.eventlog import EV_NO_ACTION, TPM_ALG_SHA384
from teeplane.attestation.sim.td import MEASUREMENT_SIZE, RtmrEvent

EV_EVENT_TAG = 0x00000006
EV_IPL = 0x0000000D

_SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
_PLATFORM_CLASS = 0  # client
_SPEC_VERSION = (0, 2, 0)  # minor, major, errata: TCG PC Client Platform Firmware Profile 2.0
_UINTN_SIZE = 2  # UINTN is 64 bits


def write_event_log(events: Iterable[RtmrEvent]) -> bytes:
    """The CCEL for `events` (as `SimulatedTd.events` records them), Spec ID header first."""
    return _spec_id_event() + b"".join(_event(event) for event in events)


def _spec_id_event() -> bytes:
    spec = (
        _SPEC_ID_SIGNATURE
        + struct.pack("<I3BB", _PLATFORM_CLASS, *_SPEC_VERSION, _UINTN_SIZE)
        + struct.pack("<IHH", 1, TPM_ALG_SHA384, MEASUREMENT_SIZE)
        + b"\x00"  # no vendor info
    )
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec


def _event(event: RtmrEvent) -> bytes:
    event_type = event.event_type
    if event_type is None:
        event_type = EV_IPL if event.data else EV_EVENT_TAG
    return (
        struct.pack("<IIIH", event.rtmr + 1, event_type, 1, TPM_ALG_SHA384)
        + event.digest
        + struct.pack("<I", len(event.data))
        + event.data
    )
