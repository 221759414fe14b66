"""The outcome of appraising one piece of evidence: the checks run, errors, and what was measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from teeplane.attestation.errors import AppraisalError, Code
from teeplane.errors import TeeplaneError

#: TCB statuses a default policy accepts.
DEFAULT_ACCEPTED_TCB = frozenset({"UpToDate"})


@dataclass(frozen=True, slots=True)
class Policy:
    """What an appraisal accepts beyond cryptographic verification."""

    accepted_tcb_statuses: frozenset[str] = DEFAULT_ACCEPTED_TCB
    allow_debug: bool = False
    allow_simulated: bool = False


@dataclass(slots=True)
class Check:
    """One named check and its outcome; `detail` says what was compared."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class Appraisal:
    """Everything an appraisal found.

    `verified` means every cryptographic and collateral check passed; `accepted` means verified
    and the policy (TCB status, debug, simulation) accepts the result.
    """

    tee: str
    simulated: bool = False
    quote_version: int | None = None
    tcb_status: str | None = None
    advisory_ids: list[str] = field(default_factory=list)
    fmspc: str | None = None
    debug: bool = False
    measurements: dict[str, str] = field(default_factory=dict)
    eventlog: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    errors: list[TeeplaneError] = field(default_factory=list)
    policy_errors: list[TeeplaneError] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        """Every cryptographic and collateral check passed."""
        return not self.errors

    @property
    def accepted(self) -> bool:
        """Verified, and the appraisal policy accepts it."""
        return not self.errors and not self.policy_errors

    def passed(self, name: str, detail: str = "") -> None:
        """Record a check that passed."""
        self.checks.append(Check(name, True, detail))

    def failed(self, name: str, error: TeeplaneError) -> None:
        """Record a check that failed with `error`."""
        self.checks.append(Check(name, False, str(error)))
        self.errors.append(error)

    def apply_policy(self, policy: Policy) -> None:
        """Record policy refusals (TCB status, debug, simulation) for a verified appraisal."""
        if self.tcb_status is not None and self.tcb_status not in policy.accepted_tcb_statuses:
            self.refuse(
                "policy.tcb_status",
                AppraisalError(
                    Code.POLICY_TCB_STATUS,
                    f"TCB status {self.tcb_status} is not accepted "
                    f"(accepted: {', '.join(sorted(policy.accepted_tcb_statuses))})",
                    where="tcb_status",
                ),
            )
        if self.debug and not policy.allow_debug:
            self.refuse(
                "policy.debug",
                AppraisalError(Code.POLICY_DEBUG, "the TEE runs with debug enabled", where="debug"),
            )
        if self.simulated and not policy.allow_simulated:
            self.refuse(
                "policy.simulated",
                AppraisalError(Code.POLICY_SIMULATED, "the evidence comes from a simulated TEE", where="simulated"),
            )

    def refuse(self, name: str, error: TeeplaneError) -> None:
        """Record a policy check that refused the evidence with `error`."""
        self.checks.append(Check(name, False, str(error)))
        self.policy_errors.append(error)

    def to_json(self) -> dict[str, Any]:
        """The appraisal as the JSON object `teeplane attest ... --json` prints."""
        return {
            "verified": self.verified,
            "accepted": self.accepted,
            "tee": self.tee,
            "quote_version": self.quote_version,
            "simulated": self.simulated,
            "tcb_status": self.tcb_status,
            "advisory_ids": self.advisory_ids,
            "fmspc": self.fmspc,
            "debug": self.debug,
            "measurements": self.measurements,
            "eventlog": self.eventlog,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "errors": [e.to_dict() for e in [*self.errors, *self.policy_errors]],
        }
