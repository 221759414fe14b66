"""The operator against a real API server: what `kubectl apply` of a ConfidentialWorkload makes,
how edits, deletions and drift are handled, and what the status says."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import yaml
from operator_stack import INITDATA, TEEPLANE_IMAGE, Kubectl, NamespaceFactory, Operator, Services, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "confidentialworkload.yaml"
IMAGE = "registry.example/app@sha256:" + "cd" * 32


def workload(name: str, baseline: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tee": "tdx",
        "baseline": baseline,
        "initdata": INITDATA,
        "template": {"containers": [{"name": "app", "image": IMAGE}]},
    }
    return {"apiVersion": "teeplane.io/v1alpha1", "kind": "ConfidentialWorkload", "metadata": {"name": name},
            "spec": body | spec}  # fmt: skip


def condition(cw: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conditions = (cw or {}).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


def wait_condition(kubectl: Kubectl, ns: str, name: str, kind: str, status: str, timeout: float = 30) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        cw = kubectl.get("cw", name, "-n", ns)
        return cw if condition(cw, kind).get("status") == status else None

    found: dict[str, Any] = wait_for(f"{kind}={status} on {ns}/{name}", probe, timeout)
    return found


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    listed = kubectl.get("events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    return [(e["type"], e["reason"]) for e in listed["items"]]


def test_apply_the_example_makes_the_deployment_and_service(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    baseline = stack.bgs.publish("ledger", "1.0.0")
    stack.create_key("ledger-db-password", [f"{ns}/ledger"], [baseline])
    kubectl("apply", "-n", ns, "-f", str(REPO / "examples"))

    cw = wait_condition(kubectl, ns, "ledger", "Ready", "True", timeout=60)
    assert {c["type"]: (c["status"], c["reason"]) for c in cw["status"]["conditions"]} == {
        "BaselineVerified": ("True", "Verified"),
        "ReferenceValuesRegistered": ("True", "Registered"),
        "KeysBound": ("True", "Bound"),
        "Deployed": ("True", "Applied"),
        "Attested": ("True", "PodsAttested"),
        "Ready": ("True", "Ready"),
    }
    assert cw["status"]["baselineId"] == baseline
    assert (cw["status"]["replicas"], cw["status"]["readyReplicas"], cw["status"]["attestedReplicas"]) == (2, 2, 2)
    assert cw["status"]["observedGeneration"] == cw["metadata"]["generation"]
    assert cw["spec"]["runtimeClassName"] == "kata-qemu-tdx"  # defaulted by the mutating webhook

    deployment = kubectl.get("deployment", "ledger", "-n", ns)
    owner = deployment["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"], o["controller"]) for o in owner] == [
        ("ConfidentialWorkload", "ledger", cw["metadata"]["uid"], True)
    ]
    pod = deployment["spec"]["template"]
    assert pod["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "teeplane.io/tee", "operator": "In", "values": ["tdx"]}
    ]
    example = yaml.safe_load(EXAMPLE.read_text())
    annotation = pod["metadata"]["annotations"]["io.katacontainers.config.hypervisor.cc_init_data"]
    assert gzip.decompress(base64.b64decode(annotation)).decode() == example["spec"]["initdata"]
    assert pod["spec"]["volumes"] == [{"name": "teeplane-keys", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]
    eps, agent = pod["spec"]["initContainers"]
    assert (eps["name"], eps["image"], eps["restartPolicy"]) == ("teeplane-eps", TEEPLANE_IMAGE, "Always")
    assert eps["args"][:4] == ["eps", "serve", "--provider", "configfs"]
    assert (agent["name"], agent["image"]) == ("teeplane-agent", TEEPLANE_IMAGE)
    assert agent["args"][:2] == ["agent", "fetch-keys"]
    assert agent["args"][agent["args"].index("--ras") + 1] == stack.ras
    assert agent["args"][-2:] == ["--key", "ledger-db-password=db/password"]
    assert agent["volumeMounts"] == [{"name": "teeplane-keys", "mountPath": "/run/teeplane/keys"}]
    (app,) = pod["spec"]["containers"]
    assert app["image"] == example["spec"]["template"]["containers"][0]["image"]
    assert app["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    assert app["volumeMounts"] == [{"name": "teeplane-keys", "mountPath": "/run/teeplane/keys", "readOnly": True}]

    svc = kubectl.get("service", "ledger", "-n", ns)
    assert svc["metadata"]["ownerReferences"][0]["uid"] == cw["metadata"]["uid"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 80, 8080), ("teeplane-eps", 8443, "teeplane-eps")
    ]  # fmt: skip
    assert svc["spec"]["selector"] == {"teeplane.io/workload": "ledger"}

    registered = stack.reference_values(ns, "ledger")
    assert registered.status_code == 200 and registered.json()["baseline_id"] == baseline
    assert ("Normal", "Ready") in events(kubectl, ns, "ledger")
    printed = kubectl("get", "cw", "ledger", "-n", ns).stdout.split()
    assert printed[:6] == ["NAME", "TEE", "BASELINE", "READY", "ATTESTED", "AGE"]
    assert printed[6:11] == ["ledger", "tdx", "ledger@1.0.0", "True", "2"]
