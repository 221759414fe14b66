"""Per-workload reference values and appraisal policy (the RAS admin API bodies), and their comparison.

A reference lists, per claim, the values it accepts; an empty list leaves that claim unconstrained,
but every reference constrains at least MRTD (TDX) or the launch measurement (SEV-SNP). When final
RTMR values vary, `rtmr_events` pins the ordered SHA-384 digests of the events extended into an
RTMR instead (an empty list: no event may extend it), matched against an event log that must
replay to the quoted RTMR.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import AppraisalError, Code
from teeplane.attestation.eventlog import EV_NO_ACTION, RTMR_SIZE, TPM_ALG_SHA384, EventLog
from teeplane.attestation.keyring import DEFAULT_MAX_TOKEN_LIFETIME

#: Name of the check `record_reference` records on an appraisal.
CHECK_REFERENCE = "reference.values"

#: Per TEE: the claim a reference must constrain, and every claim it may constrain.
_REQUIRED = {"tdx": "mrtd", "snp": "measurement"}
_CLAIMS = {
    "tdx": ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "rtmr_events", "mrconfigid", "td_attributes", "xfam"),
    "snp": ("measurement", "host_data"),
}
_NONE = "(none)"


def _hex_of(size: int) -> Callable[[str], str]:
    """A validator accepting `size` bytes as hex, in either case; it returns lowercase hex."""

    def check(value: str) -> str:
        lowered = value.lower()
        if not re.fullmatch(r"[0-9a-f]*", lowered):
            raise ValueError("expected a hex string")
        if len(lowered) != 2 * size:
            raise ValueError(f"expected {size} bytes ({2 * size} hex characters), got {len(value)} characters")
        return lowered

    return check


Hex48 = Annotated[str, AfterValidator(_hex_of(48))]
Hex32 = Annotated[str, AfterValidator(_hex_of(32))]
Hex8 = Annotated[str, AfterValidator(_hex_of(8))]
RtmrName = Literal["rtmr0", "rtmr1", "rtmr2", "rtmr3"]
#: The TCB statuses Intel's TCB Info defines for a platform that is not revoked.
TcbStatus = Literal[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Masked(_Model):
    """A register compared under a mask, byte for byte in quote order: observed & mask == value."""

    value: Hex8
    mask: Hex8

    @model_validator(mode="after")
    def _check_mask(self) -> Self:
        value, mask = bytes.fromhex(self.value), bytes.fromhex(self.mask)
        if not any(mask):
            raise ValueError("the mask is zero, so it constrains nothing")
        if any(v & ~m for v, m in zip(value, mask, strict=True)):
            raise ValueError("the value has bits set outside the mask, so nothing can match it")
        return self


class ReferenceValues(_Model):
    """The measurements one workload accepts; each list holds the accepted values of one claim."""

    tee: Literal["tdx", "snp"]
    baseline_id: str | None = None
    mrtd: list[Hex48] = []
    rtmr0: list[Hex48] = []
    rtmr1: list[Hex48] = []
    rtmr2: list[Hex48] = []
    rtmr3: list[Hex48] = []
    rtmr_events: dict[RtmrName, list[Hex48]] = {}
    mrconfigid: list[Hex48] = []
    td_attributes: Hex8 | Masked | None = None
    xfam: Hex8 | Masked | None = None
    measurement: list[Hex48] = []
    host_data: list[Hex32] = []

    @model_validator(mode="after")
    def _check_claims(self) -> Self:
        other = "snp" if self.tee == "tdx" else "tdx"
        foreign = [claim for claim in _CLAIMS[other] if getattr(self, claim)]
        if foreign:
            raise ValueError(f"{', '.join(foreign)} cannot be checked on {self.tee} evidence")
        required = _REQUIRED[self.tee]
        if not getattr(self, required):
            raise ValueError(f"a {self.tee} reference must accept at least one {required}")
        return self

    def accepted_values(self) -> dict[str, list[str]]:
        """The constrained list claims, in report order: claim -> accepted lowercase hex values."""
        lists = {
            "mrtd": self.mrtd,
            "rtmr0": self.rtmr0,
            "rtmr1": self.rtmr1,
            "rtmr2": self.rtmr2,
            "rtmr3": self.rtmr3,
            "mrconfigid": self.mrconfigid,
            "measurement": self.measurement,
            "host_data": self.host_data,
        }
        return {claim: values for claim, values in lists.items() if values}

    def masked_values(self) -> dict[str, Masked]:
        """The constrained attribute claims; an exact value is a mask of all ones."""
        out: dict[str, Masked] = {}
        for claim, given in (("td_attributes", self.td_attributes), ("xfam", self.xfam)):
            if isinstance(given, str):
                out[claim] = Masked(value=given, mask="ff" * (len(given) // 2))
            elif given is not None:
                out[claim] = given
        return out


class AppraisalPolicy(_Model):
    """What a workload accepts beyond its reference values, and how long its tokens live."""

    accepted_tcb_statuses: list[TcbStatus] = Field(default=["UpToDate"], min_length=1)
    allow_debug: bool = False
    allow_simulated: bool = False
    token_lifetime_seconds: int = Field(default=300, ge=10, le=int(DEFAULT_MAX_TOKEN_LIFETIME.total_seconds()))

    def to_policy(self) -> Policy:
        """The policy `Appraisal.apply_policy` applies."""
        return Policy(frozenset(self.accepted_tcb_statuses), self.allow_debug, self.allow_simulated)


def compare_reference(
    appraisal: Appraisal, reference: ReferenceValues, event_log: EventLog | None = None
) -> list[AppraisalError]:
    """Every way the appraised evidence differs from `reference`, each at its claim path; [] if it matches."""
    if appraisal.tee != reference.tee:
        return [
            AppraisalError(
                Code.POLICY_TEE_MISMATCH,
                f"the reference is for {reference.tee}, the evidence comes from {appraisal.tee}",
                where="tee",
            )
        ]
    errors: list[AppraisalError] = []
    for claim, accepted in reference.accepted_values().items():
        observed = appraisal.measurements.get(claim)
        if observed not in accepted:
            expected = accepted[0] if len(accepted) == 1 else f"one of {', '.join(accepted)}"
            errors.append(_mismatch(claim, f"expected {expected}, observed {observed or _NONE}"))
    for claim, masked in reference.masked_values().items():
        observed = appraisal.measurements.get(claim)
        if observed is None or not _masked_match(observed, masked):
            errors.append(
                _mismatch(claim, f"expected {masked.value} under mask {masked.mask}, observed {observed or _NONE}")
            )
    if reference.rtmr_events:
        errors += _compare_events(appraisal, reference.rtmr_events, event_log)
    return errors


def record_reference(appraisal: Appraisal, reference: ReferenceValues, event_log: EventLog | None = None) -> None:
    """Compare with `reference` and record the check `reference.values`: passed, or one refusal per error."""
    errors = compare_reference(appraisal, reference, event_log)
    for error in errors:
        appraisal.refuse(CHECK_REFERENCE, error)
    if not errors:
        appraisal.passed(CHECK_REFERENCE, _summary(reference))


def _mismatch(claim: str, detail: str) -> AppraisalError:
    return AppraisalError(Code.POLICY_MEASUREMENT_MISMATCH, f"{claim.upper()}: {detail}", where=f"measurements.{claim}")


def _masked_match(observed: str, masked: Masked) -> bool:
    try:
        raw = bytes.fromhex(observed)
    except ValueError:
        return False
    value, mask = bytes.fromhex(masked.value), bytes.fromhex(masked.mask)
    return len(raw) == len(mask) and all(o & m == v for o, m, v in zip(raw, mask, value, strict=True))


def _compare_events(
    appraisal: Appraisal, expected: dict[RtmrName, list[str]], log: EventLog | None
) -> list[AppraisalError]:
    """Each RTMR's extending SHA-384 digests against the expected ones, and its replay against the quote."""
    names = sorted(expected)
    if log is None:
        return [
            AppraisalError(
                Code.POLICY_EVENTLOG_MISSING,
                f"the reference pins the events of {', '.join(n.upper() for n in names)}, but no event log was given",
                where="eventlog",
            )
        ]
    errors: list[AppraisalError] = []
    for name in names:
        index = int(name[-1]) + 1  # CCEL register index: 1..4 = RTMR0..3
        observed = [
            event.digests.get(TPM_ALG_SHA384)
            for event in log.events
            if event.index == index and event.event_type != EV_NO_ACTION
        ]
        errors += _replay_mismatch(appraisal, name, observed)
        errors += _event_mismatches(name, expected[name], observed)
    return errors


def _event_mismatches(name: str, wanted: list[str], observed: list[bytes | None]) -> list[AppraisalError]:
    """One error per position where the expected and the logged digest differ, or one is missing."""
    errors: list[AppraisalError] = []
    for position in range(max(len(wanted), len(observed))):
        want = wanted[position] if position < len(wanted) else _NONE
        if position >= len(observed):
            seen = _NONE
        else:
            digest = observed[position]
            seen = digest.hex() if digest is not None else "(no SHA-384 digest)"
        if want != seen:
            errors.append(
                AppraisalError(
                    Code.POLICY_MEASUREMENT_MISMATCH,
                    f"{name.upper()} event {position}: expected {want}, observed {seen}",
                    where=f"eventlog.{name}[{position}]",
                )
            )
    return errors


def _replay_mismatch(appraisal: Appraisal, name: str, digests: list[bytes | None]) -> list[AppraisalError]:
    """An error if the log's events for `name` do not replay to the appraised value (an unverified log)."""
    register = bytes(RTMR_SIZE)
    for digest in digests:
        if digest is None:
            return []  # reported per event: an extension without a SHA-384 digest matches nothing
        register = hashlib.sha384(register + digest).digest()
    quoted = appraisal.measurements.get(name)
    if quoted == register.hex():
        return []
    return [
        AppraisalError(
            Code.EVENTLOG_RTMR_MISMATCH,
            f"{name.upper()}: the event log replays to {register.hex()}, the evidence has {quoted or _NONE}",
            where=f"eventlog.{name}",
        )
    ]


def _summary(reference: ReferenceValues) -> str:
    claims = [*reference.accepted_values(), *reference.masked_values()]
    labels = [claim.upper() for claim in claims] + [f"{name.upper()} events" for name in sorted(reference.rtmr_events)]
    baseline = f" (baseline {reference.baseline_id})" if reference.baseline_id else ""
    return f"{', '.join(labels)} match{baseline}"
