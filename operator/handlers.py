"""The Kopf wiring: which events run which part of the operator.

* ConfidentialWorkloads: reconcile on create, update and resume (operator start), retried while a
  step is not done; a finalizer unregisters the workload at RAS on delete, retried a bounded number
  of times, then given up with a Warning Event so that deletion never hangs.
* ConfidentialWorkloads again every `resync` seconds (a Kopf timer): registration at RAS and the
  keys' release policies at TKS are checked again and repaired (a RAS that lost its state, a key
  policy changed since), as is what someone changed without a watch event the operator saw.
* Deployments, Services and Pods labelled as the operator's: drift repair and pod counts.
* Admission: the validating and mutating webhooks, registered by Kopf (managed configurations).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import kopf

from teeplane.operator import admission
from teeplane.operator.conditions import Transition
from teeplane.operator.config import RenderConfig
from teeplane.operator.kube import Kube
from teeplane.operator.model import GROUP, PLURAL, VERSION
from teeplane.operator.persistence import HandledSpecs, ProgressAnnotations
from teeplane.operator.reconcile import Reconciler
from teeplane.operator.render import MANAGED_BY
from teeplane.operator.steps import in_thread_if
from teeplane.tks.client import TksClient

FINALIZER = "teeplane.io/unregister"
WEBHOOK_CONFIGURATION = "teeplane-operator.teeplane.io"
_OWNED = {"app.kubernetes.io/managed-by": MANAGED_BY}
#: What the operator owns and watches, as (group, version, plural).
OWNED_RESOURCES = (("apps", "v1", "deployments"), ("", "v1", "services"), ("", "v1", "pods"))
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unregistering:
    """How hard the finalizer tries to unregister a workload at RAS before it gives up."""

    attempts: int = 5
    delay: float = 2.0


def post_event(reference: dict[str, Any], transition: Transition) -> None:
    """Post an Event about a workload (Kopf queues and sends it), and log it."""
    meta = reference["metadata"]
    log = logger.warning if transition.type == "Warning" else logger.info
    log("%s/%s: %s: %s", meta["namespace"], meta["name"], transition.reason, transition.message)
    kopf.event(
        kopf.Body(cast(kopf.RawBody, reference)),
        type=transition.type,
        reason=transition.reason,
        message=transition.message,
    )


def build_registry(
    reconciler: Reconciler,
    kube: Kube,
    tks: TksClient,
    config: RenderConfig,
    unregistering: Unregistering,
    webhooks: bool,
    handled: HandledSpecs,
    resync: float = 300.0,
    keep_webhooks: bool = False,
) -> kopf.OperatorRegistry:
    """A Kopf registry with every handler of the operator; `keep_webhooks`: the webhook configuration
    names a Service that other replicas serve too, so it stays when this process stops."""
    registry = kopf.OperatorRegistry()

    async def reconcile(body: kopf.Body, **_: Any) -> None:
        retry = await reconciler.reconcile(body)
        if retry is not None:
            raise kopf.TemporaryError(retry.message, delay=retry.delay)

    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")(reconcile)

    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, id="resync", interval=resync, initial_delay=resync)
    async def resync_workload(body: kopf.Body, **_: Any) -> None:
        await reconciler.reconcile(body)  # what is not done yet, the reconcile handler retries

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="unregister")
    async def unregister(namespace: str | None, name: str, body: kopf.Body, retry: int, **_: Any) -> None:
        assert namespace is not None  # ConfidentialWorkloads are namespaced
        error = await reconciler.unregister(namespace, name)
        if error is not None:
            if retry + 1 < unregistering.attempts:
                raise kopf.TemporaryError(
                    f"RAS did not unregister {namespace}/{name}: {error}", delay=unregistering.delay
                )
            message = (
                f"gave up unregistering {namespace}/{name} at RAS after {unregistering.attempts} attempts ({error}); "
                "its reference values stay registered until removed by hand"
            )
            kopf.event(body, type="Warning", reason="UnregisterFailed", message=message)
        else:
            kopf.event(body, type="Normal", reason="Unregistered", message=f"RAS no longer accepts {namespace}/{name}")
        reconciler.forget(namespace, name)
        handled.forget(body.metadata.uid or "")

    async def owned(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type is not None:  # None: the initial listing, which the resumed reconciles cover
            await reconciler.owned_changed(type, body)

    kopf.on.event("apps", "v1", "deployments", labels=_OWNED, registry=registry, id="deployments")(owned)
    kopf.on.event("", "v1", "services", labels=_OWNED, registry=registry, id="services")(owned)

    @kopf.on.event("", "v1", "pods", labels=_OWNED, registry=registry, id="pods")
    async def pods(type: str | None, body: kopf.Body, **_: Any) -> None:
        await reconciler.pod_changed(type or "ADDED", body)

    if webhooks:
        _admission(registry, kube, tks, config, keep_webhooks)
    return registry


def _admission(
    registry: kopf.OperatorRegistry, kube: Kube, tks: TksClient, config: RenderConfig, persistent: bool
) -> None:
    @kopf.on.validate(GROUP, VERSION, PLURAL, registry=registry, id="validate", operations=["CREATE", "UPDATE"],
                      persistent=persistent)  # fmt: skip
    async def validate(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        old = kwargs.get("old")
        if kwargs.get("operation") == "UPDATE" and old is not None and old.get("spec") == body.get("spec"):
            return  # metadata and finalizers only
        try:
            spec = admission.parse(body.get("spec"))
            assert namespace is not None  # ConfidentialWorkloads are namespaced
            labels = await kube.namespace_labels(namespace) if spec.tee == "sim" else {}
            await in_thread_if(bool(spec.keys), admission.check, spec, namespace, labels, tks)  # keys: asks TKS
        except admission.WorkloadRefusedError as refused:
            raise kopf.AdmissionError(str(refused), code=422) from None

    @kopf.on.mutate(GROUP, VERSION, PLURAL, registry=registry, id="defaults", operations=["CREATE", "UPDATE"],
                    persistent=persistent)  # fmt: skip
    async def defaults(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:  # async: no thread hop
        finalizers = list(body.metadata.get("finalizers") or [])
        if kwargs.get("operation") == "CREATE" and FINALIZER not in finalizers:
            # Kopf would add it with a PATCH of its own before handling the workload: one round trip less.
            patch.setdefault("metadata", {})["finalizers"] = [*finalizers, FINALIZER]
        old = kwargs.get("old")
        old_spec = old.get("spec") if old is not None else None
        runtime_class = admission.default_runtime_class(body.get("spec", {}), old_spec, config.placements)
        if runtime_class is not None:
            patch.setdefault("spec", {})["runtimeClassName"] = runtime_class


def configure(settings: kopf.OperatorSettings, server: kopf.WebhookServer | None, handled: HandledSpecs) -> None:
    """Settings shared by every run: where Kopf keeps its state, how it posts Events, the webhook server.

    Kopf's own per-handler messages ("Handler succeeded") are neither logged per object nor posted
    as Events (the reconciler posts its own for condition transitions); its errors still are. The
    watches of Deployments, Services and Pods ask the API server for the operator's own only.
    """
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = ProgressAnnotations()
    settings.persistence.diffbase_storage = handled
    settings.posting.level = logging.ERROR
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.posting.reporting_component = MANAGED_BY
    settings.posting.event_name_prefix = "teeplane-"
    settings.execution.max_workers = 16
    for resource in OWNED_RESOURCES:  # filtered by the API server: not every Pod of the cluster, then by Kopf
        settings.watching.label_selectors[resource] = ",".join(f"{k}={v}" for k, v in _OWNED.items())
    if server is not None:
        settings.admission.server = server
        settings.admission.managed = WEBHOOK_CONFIGURATION
