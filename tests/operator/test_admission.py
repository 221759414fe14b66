"""What the API server refuses, by the CRD's schema and CEL rules or by the operator's webhooks, and
the messages users see; and the webhook server itself, spoken to directly over its TLS."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

import httpx
import pytest
from operator_stack import IMAGE, WEBHOOK_CONFIGURATION, Kubectl, NamespaceFactory, Operator, Services, workload

BASELINE = "sha256:" + "0" * 64

pytestmark = pytest.mark.kube


def refused(kubectl: Kubectl, ns: str, manifest: dict[str, Any]) -> str:
    done = kubectl.apply(manifest, "-n", ns, check=False)
    assert done.returncode != 0, f"accepted: {manifest}"
    return done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"template": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]}},
         "image registry.example/app:1.0 is not pinned by digest: use name@sha256:<64 hex digits>, not a tag"),
        ({"tee": "sgx"}, 'spec.tee: Unsupported value: "sgx": supported values: "tdx", "snp", "sim"'),
        ({"replicas": 101}, "spec.replicas in body should be less than or equal to 100"),
        ({"replicas": -1}, "spec.replicas in body should be greater than or equal to 0"),
        ({"keys": {"k": "../etc/shadow"}}, "key file paths are relative paths inside the keys volume"),
        ({"keys": {"Bad Key": "k"}}, "key IDs are lowercase letters, digits"),
        ({"keys": {"a": "same", "b": "same"}}, "two keys cannot share a file path"),
        ({"template": {"containers": [{"name": "app", "image": IMAGE}, {"name": "app", "image": IMAGE}]}},
         "container names must be unique"),
        ({"template": {"containers": [{"name": "teeplane-eps", "image": IMAGE}]}},
         "container names starting with teeplane- are reserved for the operator"),
        ({"service": {"ports": [{"name": "x", "port": 8443}]}}, "port 8443 and port names starting with teeplane-"),
        ({"baseline": "latest"}, "spec.baseline in body should match"),
    ],
)  # fmt: skip
def test_the_schema_refuses_invalid_workloads(
    kubectl: Kubectl, namespace: NamespaceFactory, change: dict[str, Any], message: str
) -> None:
    ns = namespace()
    manifest = workload("bad", BASELINE)
    manifest["spec"].update(change)
    assert message in refused(kubectl, ns, manifest)


def test_the_webhook_refuses_keys_tks_does_not_have(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    stack.create_key(f"{ns}.exists", [f"{ns}/app"], [BASELINE])
    error = refused(kubectl, ns, workload("app", BASELINE, keys={f"{ns}.exists": "a", f"{ns}.missing": "b"}))
    assert 'admission webhook "validate.teeplane-operator.teeplane.io" denied the request' in error
    assert f"key(s) {ns}.missing do not exist at TKS: create them before the workload that uses them" in error
    assert kubectl.get("cw", "app", "-n", ns) is None
    # An update that adds a missing key is refused as well.
    kubectl.apply(workload("app", BASELINE, keys={f"{ns}.exists": "a"}), "-n", ns)
    assert "do not exist at TKS" in refused(kubectl, ns, workload("app", BASELINE, keys={f"{ns}.nope": "a"}))


def test_simulation_only_where_the_namespace_allows_it(
    kubectl: Kubectl, operator: Operator, namespace: NamespaceFactory
) -> None:
    plain, lab = namespace(), namespace(**{"teeplane.io/allow-simulation": "true"})
    error = refused(kubectl, plain, workload("dev", BASELINE, tee="sim"))
    assert f"tee: sim runs a simulated TEE, whose evidence proves nothing; namespace {plain} is not labelled" in error
    kubectl.apply(workload("dev", BASELINE, tee="sim"), "-n", lab)
    assert kubectl.get("cw", "dev", "-n", lab)["spec"]["runtimeClassName"] == "kata-qemu-coco-dev"
    # A runtime class given in the spec is kept.
    kubectl.apply(workload("own", BASELINE, tee="sim", runtimeClassName="kata-custom"), "-n", lab)
    assert kubectl.get("cw", "own", "-n", lab)["spec"]["runtimeClassName"] == "kata-custom"


def test_the_webhook_defaults_the_runtime_class_and_the_finalizer(
    kubectl: Kubectl, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    created = json.loads(kubectl.apply(workload("fresh", BASELINE), "-n", ns, "--dry-run=server", "-o", "json").stdout)
    # The finalizer is there from the start: Kopf need not add it before it handles the workload.
    assert created["metadata"]["finalizers"] == ["teeplane.io/unregister"]
    assert created["spec"]["runtimeClassName"] == "kata-qemu-tdx"


def review(operation: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    request = {
        "uid": "0f0f", "kind": {"group": "teeplane.io", "version": "v1alpha1", "kind": "ConfidentialWorkload"},
        "resource": {"group": "teeplane.io", "version": "v1alpha1", "resource": "confidentialworkloads"},
        "namespace": "default", "operation": operation, "userInfo": {"username": "test"}, "object": obj,
        "oldObject": old, "dryRun": False,
    }  # fmt: skip
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_the_webhook_server_itself_refuses_what_the_schema_would(kubectl: Kubectl, operator: Operator) -> None:
    """Spoken to directly (the API server's schema never lets these through): the webhook does not rely
    on the installed CRD being current. Its certificate verifies under the registered CA bundle."""
    config = kubectl.get("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail" and hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    context = ssl.create_default_context(cadata=base64.b64decode(hook["clientConfig"]["caBundle"]).decode())
    with httpx.Client(verify=context, timeout=10) as client:

        def verdict(body: dict[str, Any]) -> dict[str, Any]:
            body["metadata"]["namespace"] = "default"
            answer: dict[str, Any] = client.post(hook["clientConfig"]["url"], json=review("CREATE", body)).json()
            return answer["response"]

        tagged = workload("x", BASELINE, template={"containers": [{"name": "a", "image": "registry.example/a:latest"}]})
        response = verdict(tagged)
        assert response["allowed"] is False and response["status"]["code"] == 422
        assert "image registry.example/a:latest is not pinned by digest" in response["status"]["message"]
        response = verdict(workload("x", BASELINE, tee="sgx"))
        assert response["allowed"] is False and "spec.tee: Input should be 'tdx', 'snp' or 'sim'" in json.dumps(
            response
        )
        assert verdict(workload("x", BASELINE))["allowed"] is True
