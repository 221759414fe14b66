"""The operator against a real API server: what `kubectl apply` of a ConfidentialWorkload makes,
how edits, deletions and drift are handled, and what the status says."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from operator_stack import (
    ADMIN_TOKEN,
    IMAGE,
    INITDATA,
    MEASUREMENTS,
    TEEPLANE_IMAGE,
    Forgery,
    Kubectl,
    NamespaceFactory,
    Operator,
    Services,
    condition,
    events,
    wait_condition,
    wait_for,
    workload,
)

from teeplane.operator import render
from teeplane.operator.config import RenderConfig
from teeplane.operator.model import ConfidentialWorkloadSpec
from teeplane.tls import CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "confidentialworkload.yaml"

pytestmark = pytest.mark.kube


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

    written = kubectl.get("cw", "ledger", "-n", ns, "--show-managed-fields")["metadata"]
    assert {(f["manager"], f.get("subresource", "")) for f in written["managedFields"]} == {
        ("kubectl-client-side-apply", ""),
        ("teeplane-operator", "status"),
    }  # the operator writes only the status: no PATCH of Kopf's own
    assert not [a for a in written["annotations"] if a.startswith("operator.teeplane.io/")]

    registered = stack.reference_values(ns, "ledger")
    assert registered.status_code == 200 and registered.json()["baseline_id"] == baseline
    assert ("Normal", "Ready") in events(kubectl, ns, "ledger")
    printed = kubectl("get", "cw", "ledger", "-n", ns).stdout.split()
    assert printed[:6] == ["NAME", "TEE", "BASELINE", "READY", "ATTESTED", "AGE"]
    assert printed[6:11] == ["ledger", "tdx", "ledger@1.0.0", "True", "2"]


def deployed(kubectl: Kubectl, ns: str, name: str, stack: Services, **spec: Any) -> dict[str, Any]:
    """Apply a workload on a fresh baseline and wait until its Deployment is applied; the workload."""
    baseline = stack.bgs.publish(name, "1")
    kubectl.apply(workload(name, baseline, **spec), "-n", ns)
    return wait_condition(kubectl, ns, name, "Deployed", "True")


def test_editing_the_workload_updates_what_it_owns(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    deployed(kubectl, ns, "web", stack)
    new_image = "registry.example/app@sha256:" + "ef" * 32
    kubectl("patch", "cw", "web", "-n", ns, "--type", "merge", "-p",
            '{"spec": {"replicas": 3, "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},'
            f' "template": {{"containers": [{{"name": "app", "image": "{new_image}"}}]}}}}}}')  # fmt: skip

    def updated() -> bool:
        d = kubectl.get("deployment", "web", "-n", ns)
        svc = kubectl.get("service", "web", "-n", ns)
        return (d["spec"]["replicas"] == 3 and d["spec"]["template"]["spec"]["containers"][0]["image"] == new_image
                and [p["name"] for p in svc["spec"]["ports"]] == ["http", "teeplane-eps"])  # fmt: skip

    wait_for("the Deployment and Service to follow the edit", updated)

    def rolled_out() -> dict[str, Any] | None:
        cw = kubectl.get("cw", "web", "-n", ns)
        counts = (cw["status"]["replicas"], cw["status"]["readyReplicas"], cw["status"]["attestedReplicas"])
        return cw if counts == (3, 3, 3) and condition(cw, "Ready").get("status") == "True" else None

    cw = wait_for("3 of 3 pods ready and attested", rolled_out, timeout=60)
    assert condition(cw, "Deployed")["observedGeneration"] == cw["metadata"]["generation"] == 2
    # Changing the TEE moves the pods: the mutating webhook follows with the runtime class it had defaulted.
    kubectl("patch", "cw", "web", "-n", ns, "--type", "merge", "-p", '{"spec": {"tee": "snp"}}')
    assert kubectl.get("cw", "web", "-n", ns)["spec"]["runtimeClassName"] == "kata-qemu-snp"
    cw = wait_condition(kubectl, ns, "web", "BaselineVerified", "False")
    assert condition(cw, "BaselineVerified")["reason"] == "TeeMismatch"
    assert condition(cw, "Deployed")["reason"] == "PrerequisitesNotMet"
    # What ran stays as it was until the spec can be deployed.
    assert kubectl.get("deployment", "web", "-n", ns)["spec"]["template"]["spec"]["runtimeClassName"] == "kata-qemu-tdx"
    assert ("Warning", "TeeMismatch") in events(kubectl, ns, "web")


def test_deleting_the_workload_removes_everything_and_unregisters_it(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    cw = deployed(kubectl, ns, "gone", stack)
    assert cw["metadata"]["finalizers"] == ["teeplane.io/unregister"]
    assert stack.reference_values(ns, "gone").status_code == 200
    kubectl("delete", "cw", "gone", "-n", ns, "--timeout=30s")
    assert stack.reference_values(ns, "gone").status_code == 404

    def collected() -> bool:
        return kubectl.get("deployment", "gone", "-n", ns) is None and kubectl.get("service", "gone", "-n", ns) is None

    wait_for("the garbage collector to delete what the workload owned", collected)
    assert ("Normal", "Unregistered") in events(kubectl, ns, "gone")


def test_what_someone_else_deletes_or_changes_comes_back(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    deployed(kubectl, ns, "steady", stack, replicas=2)
    first = kubectl.get("deployment", "steady", "-n", ns)["metadata"]["uid"]
    kubectl("delete", "deployment", "steady", "-n", ns)
    again = wait_for("the Deployment to come back", lambda: kubectl.get("deployment", "steady", "-n", ns))
    assert again["metadata"]["uid"] != first
    kubectl("delete", "service", "steady", "-n", ns)
    wait_for("the Service to come back", lambda: kubectl.get("service", "steady", "-n", ns))
    kubectl("scale", "deployment", "steady", "-n", ns, "--replicas", "7")
    kubectl("set", "image", "deployment/steady", "-n", ns, "app=registry.example/evil:latest")

    def restored() -> bool:
        spec = kubectl.get("deployment", "steady", "-n", ns)["spec"]
        return spec["replicas"] == 2 and spec["template"]["spec"]["containers"][0]["image"] == IMAGE

    wait_for("the Deployment's spec to be put back", restored)
    assert ("Warning", "Drift") in events(kubectl, ns, "steady")
    deployments = kubectl.get("deployments", "-n", ns, "-l", "app.kubernetes.io/managed-by=teeplane-operator")
    assert [d["metadata"]["name"] for d in deployments["items"]] == ["steady"]


def test_a_missing_baseline_or_a_key_that_is_not_released_blocks_the_deployment(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    kubectl.apply(workload("nobase", "unpublished@1"), "-n", ns)
    cw = wait_condition(kubectl, ns, "nobase", "BaselineVerified", "False")
    assert condition(cw, "BaselineVerified")["reason"] == "BaselineNotFound"
    assert condition(cw, "Deployed")["reason"] == "PrerequisitesNotMet"
    assert kubectl.get("deployment", "nobase", "-n", ns) is None

    baseline = stack.bgs.publish("keyed", "1")
    stack.create_key(f"{ns}.other", [f"{ns}/someone-else"], [baseline])
    kubectl.apply(workload("keyed", baseline, keys={f"{ns}.other": "k"}), "-n", ns)
    cw = wait_condition(kubectl, ns, "keyed", "KeysBound", "False")
    assert condition(cw, "KeysBound")["reason"] == "KeyPolicyMismatch"
    assert f"does not name workload {ns}/keyed" in condition(cw, "KeysBound")["message"]
    assert kubectl.get("deployment", "keyed", "-n", ns) is None
    assert ("Warning", "KeyPolicyMismatch") in events(kubectl, ns, "keyed")


def test_a_simulated_workload_runs_where_simulation_is_allowed(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace(**{"teeplane.io/allow-simulation": "true"})
    baseline = stack.bgs.publish("dev", "1")
    stack.create_key(f"{ns}.dev", [f"{ns}/dev"], [baseline], allow_simulated=True)
    kubectl.apply(workload("dev", baseline, tee="sim", keys={f"{ns}.dev": "dev.key"}), "-n", ns)
    wait_condition(kubectl, ns, "dev", "Ready", "True", timeout=60)
    pod = kubectl.get("deployment", "dev", "-n", ns)["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "kata-qemu-coco-dev"
    assert pod["initContainers"][0]["args"][:4] == ["eps", "serve", "--provider", "simulated"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "katacontainers.io/kata-runtime"
    policy = httpx.get(f"{stack.ras}/v1/policies/{ns}/dev", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert policy.json()["allow_simulated"] is True
    # The RAS policy of a real TEE never accepts simulated evidence.
    kubectl.apply(workload("real", stack.bgs.publish("real", "1")), "-n", ns)
    wait_condition(kubectl, ns, "real", "Deployed", "True")
    policy = httpx.get(f"{stack.ras}/v1/policies/{ns}/real", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert policy.json()["allow_simulated"] is False


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("other-signer", "SignatureNotVerified"),
        ("tampered", "SignatureNotVerified"),
        ("wrong-proof", "InclusionNotProven"),
    ],
)
def test_a_forged_baseline_deploys_and_registers_nothing(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory, forgery: Forgery, reason: str
) -> None:
    ns = namespace()
    stack.bgs.publish("forged", "1", forgery=forgery)
    kubectl.apply(workload("forged", "forged@1"), "-n", ns)
    cw = wait_condition(kubectl, ns, "forged", "BaselineVerified", "False")
    verified = condition(cw, "BaselineVerified")
    assert verified["reason"] == reason and verified["message"].startswith("baseline forged@1: ")
    assert condition(cw, "Deployed")["reason"] == "PrerequisitesNotMet"
    assert kubectl.get("deployment", "forged", "-n", ns) is None
    assert stack.reference_values(ns, "forged").status_code == 404
    assert ("Warning", reason) in events(kubectl, ns, "forged")


def test_initdata_that_is_not_the_baselines_is_refused(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    baseline = stack.bgs.publish("configured", "1")
    other = INITDATA.replace("true", "false")
    kubectl.apply(workload("configured", baseline, initdata=other), "-n", ns)
    cw = wait_condition(kubectl, ns, "configured", "BaselineVerified", "False")
    refused = condition(cw, "BaselineVerified")
    assert refused["reason"] == "InitdataMismatch"
    assert hashlib.sha384(other.encode()).hexdigest() in refused["message"]
    assert MEASUREMENTS.mrconfigid is not None and MEASUREMENTS.mrconfigid in refused["message"]
    assert kubectl.get("deployment", "configured", "-n", ns) is None
    assert stack.reference_values(ns, "configured").status_code == 404
    # Fixing the initdata deploys it.
    kubectl.apply(workload("configured", baseline), "-n", ns)
    wait_condition(kubectl, ns, "configured", "Deployed", "True")


def test_the_api_server_accepts_the_ca_bundle_as_a_downward_api_file(
    kubectl: Kubectl, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    bundle = CertificateAuthority.generate("services").cert_pem.decode()
    config = RenderConfig(TEEPLANE_IMAGE, "https://ras.example", "https://tks.example", ca_bundle=bundle)
    spec = ConfidentialWorkloadSpec.model_validate(workload("app", "app@1")["spec"])
    manifest = render.deployment("app", ns, "0b5f9c8e-0000-4000-8000-000000000001", spec, config)
    checked = kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", stdin=json.dumps(manifest))
    pod = json.loads(checked.stdout)["spec"]["template"]
    assert pod["metadata"]["annotations"][render.CA_ANNOTATION] == bundle
    assert any(v["name"] == render.CA_VOLUME and "downwardAPI" in v for v in pod["spec"]["volumes"])
