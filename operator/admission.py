"""Admission of ConfidentialWorkloads: what the validating webhook refuses and what the mutating
webhook defaults, with messages that say what to change.

The CRD's schema and CEL rules already refuse unpinned images and unknown TEE types; the webhook
checks them again (its verdict must not depend on the installed CRD being current) and adds what a
schema cannot know: whether the keys exist at TKS, and whether the namespace allows simulation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from teeplane.operator.config import Placement
from teeplane.operator.model import ConfidentialWorkloadSpec, Tee
from teeplane.operator.steps import simulation_refusal
from teeplane.remote import RemoteError
from teeplane.tks.client import TksClient


class WorkloadRefusedError(Exception):
    """The request is refused; the message is what the user sees."""


def parse(spec: Mapping[str, Any] | None) -> ConfidentialWorkloadSpec:
    """The spec, or WorkloadRefusedError naming every field that is wrong."""
    try:
        return ConfidentialWorkloadSpec.model_validate(spec or {})
    except ValidationError as exc:
        problems = [f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise WorkloadRefusedError("; ".join(problems)) from None


def check(spec: ConfidentialWorkloadSpec, namespace: str, namespace_labels: dict[str, str], tks: TksClient) -> None:
    """Refuse a workload that may not run here, or asks for keys TKS does not have."""
    refusal = simulation_refusal(spec, namespace, namespace_labels)
    if refusal is not None:
        raise WorkloadRefusedError(refusal)
    missing = []
    for key_id in sorted(spec.keys):
        try:
            tks.show(key_id)
        except RemoteError as error:
            if error.http_status != 404:
                raise WorkloadRefusedError(f"cannot check the keys at TKS, so refusing: {error}") from None
            missing.append(key_id)
    if missing:
        raise WorkloadRefusedError(
            f"key(s) {', '.join(missing)} do not exist at TKS: create them before the workload that uses them"
        )


def default_runtime_class(
    spec: Mapping[str, Any], old_spec: Mapping[str, Any] | None, placements: Mapping[Tee, Placement]
) -> str | None:
    """The runtime class to set: the TEE's when none is given, or when the TEE changed and the class was
    the old TEE's default. None to leave the spec as it is."""
    classes: dict[str, str] = {tee: placement.runtime_class for tee, placement in placements.items()}
    wanted = classes.get(spec.get("tee", ""))
    if wanted is None:
        return None  # the schema refuses it
    current = spec.get("runtimeClassName")
    old_default = classes.get((old_spec or {}).get("tee", ""))
    followed_old_default = old_default is not None and old_default != wanted and current == old_default
    return wanted if current is None or followed_old_default else None
