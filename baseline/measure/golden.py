"""RTMR0 from a recorded ("golden") CCEL event log of the same firmware and VMM configuration.

RTMR0 measures the TD HOB, the configuration firmware volume, secure-boot variables and ACPI
tables that the VMM builds; rather than rebuild them, a baseline may take its RTMR0 events from a
log recorded on a known-good boot: every event of CC measurement register index 1 (RTMR0) except
EV_NO_ACTION, with its SHA-384 digest, in log order. The log is parsed by
`teeplane.attestation.eventlog`.
"""

from __future__ import annotations

from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.eventlog import EV_NO_ACTION, TPM_ALG_SHA384, event_type_name, parse_event_log
from teeplane.baseline.measure.events import BootEvent

_RTMR0_INDEX = 1


def rtmr0_events(log: bytes) -> tuple[BootEvent, ...]:
    """The RTMR0 events of a CCEL log, in order; the log must carry at least one."""
    events = []
    for event in parse_event_log(log).events:
        if event.index != _RTMR0_INDEX or event.event_type == EV_NO_ACTION:
            continue
        digest = event.digests.get(TPM_ALG_SHA384)
        if digest is None:
            raise EvidenceFormatError(
                Code.EVENTLOG_MALFORMED,
                f"eventlog: the RTMR0 event at offset {event.offset} has no SHA-384 digest",
                where=f"eventlog+{event.offset:#x}",
            )
        name = event_type_name(event.event_type)
        events.append(BootEvent(0, event.event_type, digest, event.data, f"{name} (golden log)"))
    if not events:
        raise EvidenceFormatError(Code.EVENTLOG_MALFORMED, "eventlog: the golden log has no RTMR0 event")
    return tuple(events)
