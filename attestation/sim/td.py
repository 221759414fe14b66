"""A software trust domain: TDX measurement registers, RTMR extension, and v4 quotes.

RTMRs extend as on real TDX (TDG.MR.RTMR.EXTEND): RTMR = SHA-384(RTMR || 48-byte digest). A quote
carries the registers as they stand, signed under the TD's simulation authority. Every extension
is recorded, so the TD can hand out the event log that replays to its RTMRs.
"""

from __future__ import annotations

import hashlib
from dataclasses import KW_ONLY, dataclass, field

from teeplane.attestation.sim import platform
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.quote import build_quote
from teeplane.attestation.tdx.quote import TdReport

MEASUREMENT_SIZE = 48
REPORT_DATA_SIZE = 64
_ZERO48 = bytes(MEASUREMENT_SIZE)
#: TD attributes as Linux guests run: SEPT_VE_DISABLE (bit 28) set, DEBUG (bit 0) clear.
DEFAULT_TD_ATTRIBUTES = bytes.fromhex("0000001000000000")
#: XFAM of a typical TD (x87, SSE, AVX, AVX-512 state, PT, CET).
DEFAULT_XFAM = bytes.fromhex("e702060000000000")

Rtmrs = tuple[bytes, bytes, bytes, bytes]


@dataclass(frozen=True, slots=True)
class RtmrEvent:
    """One RTMR extension: the register (0..3), the 48-byte digest, the event it measures, and the
    TCG event type to log it as (None: the event log writer's default)."""

    rtmr: int
    digest: bytes
    data: bytes = b""
    event_type: int | None = None


@dataclass(slots=True, eq=False)
class SimulatedTd:
    """A TD's measurement registers; `quote` signs them under `authority`.

    `events` lists the RTMR extensions made since construction, in order.
    """

    authority: SimulationAuthority
    _: KW_ONLY
    mrtd: bytes = _ZERO48
    mrconfigid: bytes = _ZERO48
    mrowner: bytes = _ZERO48
    mrownerconfig: bytes = _ZERO48
    rtmrs: Rtmrs = (_ZERO48, _ZERO48, _ZERO48, _ZERO48)
    td_attributes: bytes = DEFAULT_TD_ATTRIBUTES
    xfam: bytes = DEFAULT_XFAM
    events: list[RtmrEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("mrtd", "mrconfigid", "mrowner", "mrownerconfig"):
            _check_size(getattr(self, name), MEASUREMENT_SIZE, name)
        _check_size(self.td_attributes, 8, "td_attributes")
        _check_size(self.xfam, 8, "xfam")
        if len(self.rtmrs) != 4:
            raise ValueError(f"a TD has 4 RTMRs, got {len(self.rtmrs)}")
        for index, rtmr in enumerate(self.rtmrs):
            _check_size(rtmr, MEASUREMENT_SIZE, f"rtmr{index}")

    def extend_rtmr(self, index: int, digest: bytes, *, data: bytes = b"", event_type: int | None = None) -> bytes:
        """Extend RTMR `index` (0..3) with a 48-byte digest; return the new value.

        `data` is the event the digest measures and `event_type` its TCG event type, recorded
        with it for the event log.
        """
        if not 0 <= index < 4:
            raise ValueError(f"RTMR index {index} is not 0..3")
        _check_size(digest, MEASUREMENT_SIZE, "digest")
        rtmrs = list(self.rtmrs)
        rtmrs[index] = hashlib.sha384(rtmrs[index] + digest).digest()
        self.rtmrs = (rtmrs[0], rtmrs[1], rtmrs[2], rtmrs[3])
        self.events.append(RtmrEvent(index, digest, data, event_type))
        return rtmrs[index]

    def extend_rtmr_event(self, index: int, data: bytes) -> bytes:
        """Extend RTMR `index` with SHA-384 of `data` (an event measured into it)."""
        return self.extend_rtmr(index, hashlib.sha384(data).digest(), data=data)

    def report(self, report_data: bytes) -> TdReport:
        """The TD report body for `report_data` (up to 64 bytes, zero-padded as configfs-tsm does)."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise ValueError(f"report data is at most {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
        return TdReport(
            tee_tcb_svn=platform.TEE_TCB_SVN,
            mrseam=platform.MRSEAM,
            mrsignerseam=platform.MRSIGNERSEAM,
            seam_attributes=platform.SEAM_ATTRIBUTES,
            td_attributes=self.td_attributes,
            xfam=self.xfam,
            mrtd=self.mrtd,
            mrconfigid=self.mrconfigid,
            mrowner=self.mrowner,
            mrownerconfig=self.mrownerconfig,
            rtmrs=self.rtmrs,
            report_data=report_data.ljust(REPORT_DATA_SIZE, b"\x00"),
        )

    def quote(self, report_data: bytes) -> bytes:
        """A signed TDX quote v4 of the TD's current registers and `report_data`."""
        return build_quote(self.authority, self.report(report_data))


def _check_size(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
