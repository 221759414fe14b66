"""Reconciling one ConfidentialWorkload: level-based, so running it again (after a restart, a retry,
or drift in what it owns) converges on the same objects.

In order: verify the baseline (BGS), register reference values and policy (RAS), check the keys
(TKS), then apply the Deployment and the Service, and write every outcome as a status condition.
The Deployment is applied only once the first three hold; until then whatever runs stays as it is.
Events from owned Deployments, Services and Pods refresh the pod counts, and re-apply what someone
else changed or deleted. One reconcile per workload runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from teeplane.attestation.ras.client import RasClient
from teeplane.operator import render
from teeplane.operator.baselines import BaselineVerifier
from teeplane.operator.conditions import Outcome, Transition, merge, rollout, transitions
from teeplane.operator.config import RenderConfig
from teeplane.operator.kube import Kube, NotOwnedError
from teeplane.operator.model import (
    API_VERSION,
    KIND,
    ConfidentialWorkloadSpec,
    ConfidentialWorkloadStatus,
)
from teeplane.operator.steps import (
    bind_keys,
    check_baseline,
    in_thread_if,
    register_reference_values,
    simulation_refusal,
    verify_baseline,
)
from teeplane.remote import RemoteError
from teeplane.tks.client import TksClient

#: Seconds until a workload is reconciled again when a service could not be asked (Unknown) or said no (False).
RETRY_UNAVAILABLE = 5.0
RETRY_REFUSED = 30.0
#: Posts an Event about a workload: (workload reference, transition).
EventPoster = Callable[[dict[str, Any], Transition], None]
Key = tuple[str, str]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The clients of the services a workload is registered with."""

    ras: RasClient
    tks: TksClient
    baselines: BaselineVerifier


@dataclass(frozen=True)
class Retry:
    """A reconcile that is not done: try again in `delay` seconds; `message` says what is pending."""

    delay: float
    message: str


@dataclass
class _Known:
    """What the last reconcile of a workload saw and wrote."""

    reference: dict[str, Any]
    replicas: int
    status: ConfidentialWorkloadStatus
    applied: dict[str, str] = field(default_factory=dict)  # kind -> generation (Deployment) / resourceVersion


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Reconciles workloads; keeps what it last applied so it can tell drift from its own writes."""

    def __init__(
        self, kube: Kube, services: Services, config: RenderConfig, post: EventPoster, concurrency: int = 16
    ) -> None:
        self._kube = kube
        self._services = services
        self._config = config
        self._post = post
        self._locks: defaultdict[Key, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._slots = asyncio.Semaphore(concurrency)  # bounds the requests (and memory) in flight
        self._known: dict[Key, _Known] = {}
        self._ready: dict[Key, int] = {}
        self._attested: defaultdict[Key, dict[str, bool]] = defaultdict(dict)

    async def reconcile(self, body: Mapping[str, Any]) -> Retry | None:
        """Bring one workload in step; when to try again if a step is not done, or None."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        async with self._locks[key]:
            return await self._reconcile(body, key)

    async def _reconcile(self, body: Mapping[str, Any], key: Key) -> Retry | None:
        async with self._slots:
            return await self._steps(body, key)

    async def _steps(self, body: Mapping[str, Any], key: Key) -> Retry | None:
        namespace, name = key
        meta = body["metadata"]
        spec = ConfidentialWorkloadSpec.model_validate(body["spec"])
        services = self._services
        cached = services.baselines.cached(spec.baseline)  # no thread hop for a baseline verified a moment ago
        baseline_outcome, baseline = (
            check_baseline(spec, cached)
            if cached is not None
            else await asyncio.to_thread(verify_baseline, services.baselines, spec)
        )
        outcomes = [baseline_outcome]
        if baseline is None:
            waiting = f"waiting for the baseline: {baseline_outcome.message}"
            outcomes += [Outcome.unknown("ReferenceValuesRegistered", "WaitingForBaseline", waiting),
                         Outcome.unknown("KeysBound", "WaitingForBaseline", waiting)]  # fmt: skip
        else:
            outcomes += await asyncio.gather(
                asyncio.to_thread(register_reference_values, services.ras, namespace, name, spec, baseline),
                in_thread_if(bool(spec.keys), bind_keys, services.tks, namespace, name, spec, baseline.id),
            )
        known = self._known.get(key)
        applied = dict(known.applied) if known else {}
        deployed = await self._deploy(meta, spec, outcomes, applied)
        outcomes.append(deployed)
        outcomes += rollout(deployed, spec.replicas, self._ready.get(key, 0), self._attested_count(key))
        # This process wrote the status last if it knows the workload; the body may be older than that.
        previous = known.status if known else ConfidentialWorkloadStatus.model_validate(body.get("status") or {})
        status = ConfidentialWorkloadStatus(
            observed_generation=meta.get("generation", 0),
            baseline_id=baseline.id if baseline else previous.baseline_id,
            replicas=spec.replicas,
            ready_replicas=self._ready.get(key, 0),
            attested_replicas=self._attested_count(key),
            conditions=merge(previous.conditions, outcomes, meta.get("generation", 0), _now()),
        )
        identity = {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}
        reference = {"apiVersion": API_VERSION, "kind": KIND, "metadata": identity}
        self._known[key] = _Known(reference, spec.replicas, previous, applied)
        await self._write(key, status)
        pending = [o for o in outcomes[:4] if o.status != "True"]
        if not pending:
            return None
        delay = RETRY_UNAVAILABLE if any(o.status == "Unknown" for o in pending) else RETRY_REFUSED
        return Retry(delay, "; ".join(f"{o.type} is {o.status} ({o.reason}: {o.message})" for o in pending))

    async def _deploy(
        self, meta: Mapping[str, Any], spec: ConfidentialWorkloadSpec, before: list[Outcome], applied: dict[str, str]
    ) -> Outcome:
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if spec.tee == "sim":
            refusal = simulation_refusal(spec, namespace, await self._kube.namespace_labels(namespace))
            if refusal is not None:
                return Outcome.false("Deployed", "SimulationNotAllowed", refusal)
        blockers = [o.type for o in before if o.status != "True"]
        if blockers:
            message = f"not applying this spec until {', '.join(blockers)}; what runs now is left as it is"
            return Outcome.false("Deployed", "PrerequisitesNotMet", message)
        try:
            deployment, svc = await asyncio.gather(
                self._kube.apply(
                    render.deployment(name, namespace, uid, spec, self._config), "Deployment" not in applied
                ),
                self._kube.apply(render.service(name, namespace, uid, spec), "Service" not in applied),
            )
        except NotOwnedError as conflict:
            return Outcome.false("Deployed", "NameConflict", str(conflict))
        applied["Deployment"] = str(deployment["metadata"]["generation"])
        applied["Service"] = svc["metadata"]["resourceVersion"]
        self._ready[(namespace, name)] = deployment.get("status", {}).get("readyReplicas", 0)
        runtime = render.runtime_class(spec, self._config)
        return Outcome.true("Deployed", "Applied", f"Deployment and Service {name} applied (runtime class {runtime})")

    async def owned_changed(self, event: str, body: Mapping[str, Any]) -> None:
        """A Deployment or Service the operator owns changed: re-apply if it was deleted or someone
        else changed it; otherwise refresh the ready count."""
        meta = body["metadata"]
        key = (meta["namespace"], meta.get("labels", {}).get(render.WORKLOAD_LABEL, ""))
        kind = body["kind"]
        async with self._locks[key]:
            known = self._known.get(key)
            if known is None:
                return  # not reconciled yet by this process: its reconcile comes
            version = str(meta.get("generation")) if kind == "Deployment" else meta.get("resourceVersion")
            if event == "DELETED" or changed_since(known.applied.get(kind), version):
                known.applied.pop(kind, None)  # check who owns what has that name before applying again
                workload = await self._kube.get_workload(*key)
                if workload is not None and not workload["metadata"].get("deletionTimestamp"):
                    drift = Transition("Warning", "Drift", f"{kind} {key[1]} was {_changed(event)}")
                    self._post(known.reference, drift)
                    try:
                        await self._reconcile(workload, key)
                    except ApiException as error:  # e.g. its namespace is being deleted
                        logger.warning("could not repair %s %s/%s: %s", kind, *key, error.reason)
                return
            if kind == "Deployment":
                self._ready[key] = body.get("status", {}).get("readyReplicas", 0)
                await self._refresh(key, known)

    async def pod_changed(self, event: str, body: Mapping[str, Any]) -> None:
        """A pod of a workload changed: count it as attested once its agent init container succeeded,
        until it is being deleted."""
        meta = body["metadata"]
        key = (meta["namespace"], meta.get("labels", {}).get(render.WORKLOAD_LABEL, ""))
        pods = self._attested[key]
        if event == "DELETED":
            pods.pop(meta["name"], None)
        else:
            pods[meta["name"]] = not meta.get("deletionTimestamp") and _agent_succeeded(body)
        async with self._locks[key]:
            known = self._known.get(key)
            if known is not None:
                await self._refresh(key, known)

    async def unregister(self, namespace: str, name: str) -> RemoteError | None:
        """Remove the workload's reference values and policy from RAS; the error if RAS could not be asked."""
        ras = self._services.ras
        for remove in (ras.delete_reference_values, ras.delete_policy):
            try:
                await asyncio.to_thread(remove, namespace, name)
            except RemoteError as error:
                if error.http_status != 404:
                    return error
        return None

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is kept about a deleted workload."""
        key = (namespace, name)
        for kept in (self._known, self._ready, self._attested, self._locks):
            kept.pop(key, None)

    async def _refresh(self, key: Key, known: _Known) -> None:
        deployed = next((c for c in known.status.conditions if c.type == "Deployed"), None)
        if deployed is None:
            return
        ready, attested = self._ready.get(key, 0), self._attested_count(key)
        generation = known.status.observed_generation
        conditions = merge(
            known.status.conditions, rollout(deployed, known.replicas, ready, attested), generation, _now()
        )
        status = known.status.model_copy(
            update={"ready_replicas": ready, "attested_replicas": attested, "conditions": conditions}
        )
        await self._write(key, status)

    async def _write(self, key: Key, status: ConfidentialWorkloadStatus) -> None:
        known = self._known[key]
        if status == known.status:
            return
        await self._kube.patch_status(*key, status.model_dump(mode="json"))
        transition = transitions(known.status.conditions, status.conditions)
        if transition is not None:
            self._post(known.reference, transition)
        known.status = status

    def _attested_count(self, key: Key) -> int:
        return sum(self._attested.get(key, {}).values())


def _agent_succeeded(pod: Mapping[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("initContainerStatuses") or []
    return any(
        s.get("name") == render.AGENT_CONTAINER and s.get("state", {}).get("terminated", {}).get("exitCode") == 0
        for s in statuses
    )


def changed_since(applied: str | None, seen: str | None) -> bool:
    """Whether the object seen is newer than what this process applied (an event that predates the
    apply, handled after it, is not drift). Generations and etcd resource versions are integers."""
    if applied is None or seen is None or not (applied.isdigit() and seen.isdigit()):
        return applied != seen
    return int(seen) > int(applied)


def _changed(event: str) -> str:
    return "deleted; re-creating it" if event == "DELETED" else "changed by someone else; applying it again"
