"""The reconcile steps that talk to TEEPlane's services, each through that service's client, each
ending in a condition: BaselineVerified (BGS), ReferenceValuesRegistered (RAS), KeysBound (TKS).

A condition is Unknown when the service could not be asked (try again soon) and False when it
answered no (try again later: a baseline may be published, a key created or its policy changed).
These functions block on HTTP; the reconciler runs them in threads when they would ask a service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.measure.initdata import HOST_DATA_SIZE, MRCONFIGID_SIZE, fit, initdata_digest
from teeplane.operator.baselines import BaselineError, BaselineVerifier, VerifiedBaseline
from teeplane.operator.conditions import Outcome
from teeplane.operator.model import ConditionType, ConfidentialWorkloadSpec, Tee
from teeplane.remote import RemoteError
from teeplane.tks.client import TksClient
from teeplane.tks.models import KeyMetadata

#: The TEE whose evidence a workload's pods produce (the simulated TEE is a simulated TDX module).
EVIDENCE_TEE: dict[Tee, str] = {"tdx": "tdx", "snp": "snp", "sim": "tdx"}
SIMULATION_LABEL = "teeplane.io/allow-simulation"
_T = TypeVar("_T")


async def in_thread_if(blocks: bool, step: Callable[..., _T], *args: Any) -> _T:
    """Run a step in a thread if it `blocks` on a service, else in the event loop (a thread hop costs
    more than a step that only computes, such as `bind_keys` for a workload without keys)."""
    return await asyncio.to_thread(step, *args) if blocks else step(*args)


def verify_baseline(
    verifier: BaselineVerifier, spec: ConfidentialWorkloadSpec
) -> tuple[Outcome, VerifiedBaseline | None]:
    """BaselineVerified: the baseline exists, verifies, is the one named, is for the workload's TEE, and
    expects the workload's initdata."""
    try:
        baseline = verifier.verify(spec.baseline)
    except BaselineError as error:
        status = Outcome.unknown if error.transient else Outcome.false
        return status("BaselineVerified", error.reason, error.message), None
    return check_baseline(spec, baseline)


def check_baseline(
    spec: ConfidentialWorkloadSpec, baseline: VerifiedBaseline
) -> tuple[Outcome, VerifiedBaseline | None]:
    """BaselineVerified for a baseline already verified: is it for the workload's TEE, and does it
    expect the workload's initdata."""
    expected = EVIDENCE_TEE[spec.tee]
    if baseline.measurements.tee != expected:
        message = f"baseline {baseline.id} measures a {baseline.measurements.tee} TEE; tee: {spec.tee} needs {expected}"
        return Outcome.false("BaselineVerified", "TeeMismatch", message), None
    refusal = initdata_refusal(spec.initdata, baseline)
    if refusal is not None:
        return refusal, None
    return Outcome.true("BaselineVerified", "Verified", f"baseline {baseline.id} verified"), baseline


def initdata_refusal(initdata: str, baseline: VerifiedBaseline) -> Outcome | None:
    """Why the initdata does not hash (by the algorithm it declares) to the register the baseline
    expects, MRCONFIGID (TDX) or HOST_DATA (SNP); None if it does."""
    measurements = baseline.measurements
    register, size, expected = (
        ("HOST_DATA", HOST_DATA_SIZE, measurements.host_data)
        if measurements.tee == "snp"
        else ("MRCONFIGID", MRCONFIGID_SIZE, measurements.mrconfigid)
    )
    try:
        digest = fit(initdata_digest(initdata.encode()), size).hex()
    except BuildInputError as error:
        return Outcome.false("BaselineVerified", "InitdataMalformed", f"spec.initdata: {error.message}")
    if expected is not None and digest == expected.lower():
        return None
    message = (
        f"spec.initdata hashes to {register} {digest}, but baseline {baseline.id} expects "
        f"{expected if expected is not None else 'none (it does not measure initdata)'}"
    )
    return Outcome.false("BaselineVerified", "InitdataMismatch", message)


def register_reference_values(
    ras: RasClient, namespace: str, name: str, spec: ConfidentialWorkloadSpec, baseline: VerifiedBaseline
) -> Outcome:
    """ReferenceValuesRegistered: RAS holds the baseline's measurements and the workload's policy."""
    policy = AppraisalPolicy(
        accepted_tcb_statuses=list(spec.attestation.accepted_tcb_statuses),
        allow_debug=spec.attestation.allow_debug,
        allow_simulated=spec.tee == "sim",
    )
    try:
        ras.put_reference_values(namespace, name, baseline.measurements.reference_values(baseline.id))
        ras.put_policy(namespace, name, policy)
    except RemoteError as error:
        return _failed("ReferenceValuesRegistered", "Ras", error)
    message = f"RAS accepts {namespace}/{name} booted from baseline {baseline.id}"
    return Outcome.true("ReferenceValuesRegistered", "Registered", message)


def bind_keys(tks: TksClient, namespace: str, name: str, spec: ConfidentialWorkloadSpec, baseline_id: str) -> Outcome:
    """KeysBound: every key exists at TKS and its release policy lets this workload receive it."""
    if not spec.keys:
        return Outcome.true("KeysBound", "NoKeys", "the workload asks for no keys")
    problems: list[str] = []
    for key_id in sorted(spec.keys):
        try:
            key = tks.show(key_id)
        except RemoteError as error:
            if error.http_status == 404:
                problems.append(f"key {key_id} does not exist at TKS")
                continue
            return _failed("KeysBound", "Tks", error)
        problems += key_problems(key, f"{namespace}/{name}", baseline_id, spec.tee)
    if problems:
        reason = "KeyNotFound" if any("does not exist" in p for p in problems) else "KeyPolicyMismatch"
        return Outcome.false("KeysBound", reason, "; ".join(problems))
    return Outcome.true("KeysBound", "Bound", f"TKS releases {len(spec.keys)} key(s) to {namespace}/{name}")


def key_problems(key: KeyMetadata, workload: str, baseline_id: str, tee: Tee) -> list[str]:
    """Why the key's release policy would refuse this workload's pods ([] if it would release)."""
    policy, problems = key.policy, []
    if workload not in policy.workloads:
        problems.append(f"key {key.id}'s release policy does not name workload {workload}")
    if not policy.any_baseline and baseline_id not in policy.baselines:
        problems.append(f"key {key.id}'s release policy does not accept baseline {baseline_id}")
    if EVIDENCE_TEE[tee] not in policy.tee_types:
        problems.append(f"key {key.id}'s release policy does not accept {EVIDENCE_TEE[tee]} evidence")
    if tee == "sim" and not policy.allow_simulated:
        problems.append(f"key {key.id}'s release policy does not accept simulated evidence")
    return problems


def simulation_refusal(spec: ConfidentialWorkloadSpec, namespace: str, namespace_labels: dict[str, str]) -> str | None:
    """Why `tee: sim` may not run in this namespace, or None if it may."""
    if spec.tee != "sim" or namespace_labels.get(SIMULATION_LABEL) == "true":
        return None
    return (
        f"tee: sim runs a simulated TEE, whose evidence proves nothing; namespace {namespace} is not labelled "
        f"{SIMULATION_LABEL}=true"
    )


def _failed(condition: ConditionType, service: str, error: RemoteError) -> Outcome:
    if error.code == "service.unreachable" or error.http_status >= 500:
        return Outcome.unknown(condition, f"{service}Unavailable", str(error))
    return Outcome.false(condition, f"{service}Refused", str(error))
