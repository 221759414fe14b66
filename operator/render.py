"""The Deployment and Service a ConfidentialWorkload asks for: pure functions of the resource and the
operator's configuration, applied as they are (server-side apply), so rendering twice gives the same
objects and drift in any field rendered here is put back.

Each pod gets, besides the workload's containers:

* the EPS sidecar (`teeplane eps serve`, a native sidecar: an init container that keeps running), which
  serves evidence to the agent and to outside verifiers through the Service;
* the agent init container (`teeplane agent fetch-keys`), which attests the pod to RAS through the EPS
  and writes the keys TKS releases into an in-memory volume the workload's containers mount read-only;
* the initdata annotation, which Kata hands to the TEE (its digest is MRCONFIGID / HOST_DATA), the
  runtime class of the TEE and a node affinity to nodes that have it;
* with a CA bundle configured, the bundle in a pod annotation that a downward-API volume gives the
  agent as a file: no object per namespace to keep, and a new bundle rolls the pods out.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

from teeplane.operator.config import RenderConfig
from teeplane.operator.model import API_VERSION, EPS_PORT, KIND, ConfidentialWorkloadSpec, Container

MANAGED_BY = "teeplane-operator"
WORKLOAD_LABEL = "teeplane.io/workload"
INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
BASELINE_ANNOTATION = "teeplane.io/baseline"
KEYS_VOLUME = "teeplane-keys"
KEYS_DIR = "/run/teeplane/keys"
CA_ANNOTATION = "teeplane.io/ca-bundle"
CA_VOLUME = "teeplane-ca"
CA_DIR = "/run/teeplane/ca"
CA_FILE = "ca.crt"
EPS_CONTAINER = "teeplane-eps"
AGENT_CONTAINER = "teeplane-agent"
EPS_PORT_NAME = "teeplane-eps"
_SIDECAR_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}


def labels(name: str) -> dict[str, str]:
    """The labels on everything the operator makes for workload `name`."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": MANAGED_BY, WORKLOAD_LABEL: name}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """The controller reference to the ConfidentialWorkload: the garbage collector deletes what it owns."""
    return {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid, "controller": True,
            "blockOwnerDeletion": True}  # fmt: skip


def runtime_class(spec: ConfidentialWorkloadSpec, config: RenderConfig) -> str:
    """The runtime class the pods use: the spec's, else the operator's for the TEE."""
    return spec.runtime_class_name or config.placements[spec.tee].runtime_class


def encode_initdata(document: str) -> str:
    """The annotation value Kata reads: the initdata document gzip-compressed (reproducibly), base64."""
    return base64.b64encode(gzip.compress(document.encode(), mtime=0)).decode()


def deployment(
    name: str, namespace: str, uid: str, spec: ConfidentialWorkloadSpec, config: RenderConfig
) -> dict[str, Any]:
    """The Deployment running the workload."""
    placement = config.placements[spec.tee]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": placement.node_label, "operator": "In", "values": [placement.node_value]}]}
    ]}}}  # fmt: skip
    annotations = {INITDATA_ANNOTATION: encode_initdata(spec.initdata), BASELINE_ANNOTATION: spec.baseline}
    volumes: list[dict[str, Any]] = [{"name": KEYS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    if config.ca_bundle is not None:
        annotations[CA_ANNOTATION] = config.ca_bundle
        items = [{"path": CA_FILE, "fieldRef": {"fieldPath": f"metadata.annotations['{CA_ANNOTATION}']"}}]
        volumes.append({"name": CA_VOLUME, "downwardAPI": {"items": items}})
    pod = {
        "metadata": {"labels": labels(name), "annotations": annotations},
        "spec": {
            "runtimeClassName": runtime_class(spec, config),
            "affinity": affinity,
            "automountServiceAccountToken": False,
            "initContainers": [_eps(spec, config), _agent(name, namespace, spec, config)],
            "containers": [_container(c) for c in spec.template.containers],
            "volumes": volumes,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": {"replicas": spec.replicas, "selector": {"matchLabels": {WORKLOAD_LABEL: name}}, "template": pod},
    }


def service(name: str, namespace: str, uid: str, spec: ConfidentialWorkloadSpec) -> dict[str, Any]:
    """The Service in front of the pods: the workload's ports and the EPS, for outside verifiers."""
    ports = [
        {"name": p.name, "port": p.port, "targetPort": p.target_port or p.port, "protocol": p.protocol}
        for p in spec.service.ports
    ]
    ports.append({"name": EPS_PORT_NAME, "port": EPS_PORT, "targetPort": EPS_PORT_NAME, "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(name),
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": {"type": "ClusterIP", "selector": {WORKLOAD_LABEL: name}, "ports": ports},
    }


def _container(container: Container) -> dict[str, Any]:
    out: dict[str, Any] = {"name": container.name, "image": container.image}
    if container.command:
        out["command"] = list(container.command)
    if container.args:
        out["args"] = list(container.args)
    if container.env:
        out["env"] = [{"name": e.name, "value": e.value} for e in container.env]
    if container.ports:
        out["ports"] = [p.model_dump(exclude_none=True) for p in container.ports]
    resources = container.resources.model_dump(exclude_defaults=True)
    if resources:
        out["resources"] = resources
    out["volumeMounts"] = [{"name": KEYS_VOLUME, "mountPath": KEYS_DIR, "readOnly": True}]
    return out


def _eps(spec: ConfidentialWorkloadSpec, config: RenderConfig) -> dict[str, Any]:
    provider = "simulated" if spec.tee == "sim" else "configfs"
    probe = {"httpGet": {"path": "/.well-known/teeplane", "port": EPS_PORT_NAME}, "periodSeconds": 1,
             "failureThreshold": 30}  # fmt: skip
    return {
        "name": EPS_CONTAINER,
        "image": config.teeplane_image,
        "restartPolicy": "Always",
        "args": [
            "eps",
            "serve",
            "--provider",
            provider,
            "--host",
            "0.0.0.0",
            "--port",
            str(EPS_PORT),
            "--baseline-id",
            spec.baseline,
        ],
        "ports": [{"name": EPS_PORT_NAME, "containerPort": EPS_PORT, "protocol": "TCP"}],
        "startupProbe": probe,
        "resources": _SIDECAR_RESOURCES,
    }


def _agent(name: str, namespace: str, spec: ConfidentialWorkloadSpec, config: RenderConfig) -> dict[str, Any]:
    keys = [arg for key_id, path in sorted(spec.keys.items()) for arg in ("--key", f"{key_id}={path}")]
    mounts: list[dict[str, Any]] = [{"name": KEYS_VOLUME, "mountPath": KEYS_DIR}]
    trust: list[str] = []
    if config.ca_bundle is not None:
        mounts.append({"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True})
        trust = ["--ca-file", f"{CA_DIR}/{CA_FILE}"]
    return {
        "name": AGENT_CONTAINER,
        "image": config.teeplane_image,
        "args": [
            "agent",
            "fetch-keys",
            "--ras",
            config.ras_url,
            "--tks",
            config.tks_url,
            "--eps",
            f"http://127.0.0.1:{EPS_PORT}",
            "--namespace",
            namespace,
            "--name",
            name,
            "--pod",
            "$(POD_NAME)",
            "--out-dir",
            KEYS_DIR,
            *trust,
            *keys,
        ],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": mounts,
        "resources": _SIDECAR_RESOURCES,
    }
