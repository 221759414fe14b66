"""Status conditions: each reconcile step's outcome, merged into the conditions a resource already has
(a condition keeps its lastTransitionTime while its status stays), and the Events its transitions make."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from teeplane.operator.model import CONDITION_TYPES, Condition, ConditionType

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Outcome:
    """What one step found: a condition type, its status, a CamelCase reason and a message for people."""

    type: ConditionType
    status: Status
    reason: str
    message: str

    @classmethod
    def true(cls, type_: ConditionType, reason: str, message: str) -> Outcome:
        return cls(type_, "True", reason, message)

    @classmethod
    def false(cls, type_: ConditionType, reason: str, message: str) -> Outcome:
        return cls(type_, "False", reason, message)

    @classmethod
    def unknown(cls, type_: ConditionType, reason: str, message: str) -> Outcome:
        return cls(type_, "Unknown", reason, message)


@dataclass(frozen=True)
class Transition:
    """A condition that changed status or reason: posted as a Kubernetes Event."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def merge(previous: Sequence[Condition], outcomes: Iterable[Outcome], generation: int, now: str) -> list[Condition]:
    """The conditions after `outcomes`, in the canonical order; conditions without an outcome stay as they were."""
    by_type = {c.type: c for c in previous}
    for outcome in outcomes:
        before = by_type.get(outcome.type)
        since = before.last_transition_time if before is not None and before.status == outcome.status else now
        by_type[outcome.type] = Condition(
            type=outcome.type,
            status=outcome.status,
            reason=outcome.reason,
            message=outcome.message,
            last_transition_time=since,
            observed_generation=generation,
        )
    return [by_type[t] for t in CONDITION_TYPES if t in by_type]


def transitions(previous: Sequence[Condition], current: Sequence[Condition]) -> Transition | None:
    """One Event for the conditions whose status or reason changed (a condition that starts out
    Unknown, before anything happened, is no change), or None; its message names each change.

    When a change is to False or Unknown, a Warning named after the cause: the first condition
    that is not True (the conditions after it follow from it). Otherwise Normal, named after the
    last change (how far the workload got)."""
    before = {c.type: (c.status, c.reason) for c in previous}
    changed = [
        c
        for c in current
        if before.get(c.type) != (c.status, c.reason) and not (c.status == "Unknown" and c.type not in before)
    ]
    if not changed:
        return None
    if all(c.status == "True" for c in changed):
        return Transition("Normal", changed[-1].reason, _listed(changed))
    cause = next(c for c in current if c.status != "True")
    return Transition("Warning", cause.reason, _listed([c for c in current if c in changed or c is cause]))


def _listed(conditions: Iterable[Condition]) -> str:
    return "; ".join(f"{c.type} is {c.status} ({c.reason}): {c.message}" for c in conditions)


def rollout(deployed: Condition | Outcome, replicas: int, ready: int, attested: int) -> list[Outcome]:
    """Attested and Ready, from the Deployed condition and the pods' counts."""
    counted = f"{attested} of {replicas} pod(s) attested"
    if replicas == 0:
        attested_outcome = Outcome.unknown("Attested", "NoPods", "the workload is scaled to zero")
    elif attested >= replicas:
        attested_outcome = Outcome.true("Attested", "PodsAttested", counted)
    else:
        attested_outcome = Outcome.unknown("Attested", "WaitingForPods", counted)
    if deployed.status != "True":
        ready_outcome = Outcome.false("Ready", deployed.reason, deployed.message)
    elif replicas == 0 or (ready >= replicas and attested_outcome.status == "True"):
        ready_outcome = Outcome.true("Ready", "Ready", f"{ready} of {replicas} pod(s) ready, {counted}")
    else:
        ready_outcome = Outcome.unknown("Ready", "WaitingForPods", f"{ready} of {replicas} pod(s) ready, {counted}")
    return [attested_outcome, ready_outcome]
