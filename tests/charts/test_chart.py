"""The Helm chart: `helm lint --strict`, its renders valid against strict schemas of Kubernetes
v1.33 and of the CRDs (kubeconform), accepted by a real kube-apiserver (`kubectl apply
--dry-run=server`), and its required values refused with a message when missing or mistyped.

helm and kubeconform come from hack/helm.sh and hack/kubeconform.sh (built on first use, then
cached); a failing build fails these tests.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kube_cluster import kubeconfig  # noqa: F401
from operator_stack import CHART, OPERATOR_NAMESPACE, REPO, Kubectl, install_chart

from teeplane.baseline.keys import generate_signer, public_pem
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.operator.handlers import WEBHOOK_CONFIGURATION

# A first build on 2 busy CPUs takes minutes.
BUILD_TIMEOUT = 3600.0
DIGEST = "sha256:" + "0123456789abcdef" * 4
SCHEMA_FILE = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
#: What the operator trusts baselines under: a signer's public key and the log's verifier key.
BASELINE_TRUST = {"signerKeys": [public_pem(generate_signer()).decode()],
                  "logKey": LogSigner.generate("bgs.example.com/baselines").verifier.vkey}  # fmt: skip
#: The values without defaults: the chart renders with these and the rest as values.yaml sets them.
REQUIRED: dict[str, Any] = {
    "image": {"digest": DIGEST},
    "operator": {"baselineTrust": BASELINE_TRUST},
    "etcd": {"endpoints": "etcd-0.example:2379,etcd-1.example:2379"},
    "ras": {"adminTokens": {"existingSecret": "ras-admin"}},
    "tks": {"adminTokens": {"existingSecret": "tks-admin"}, "kek": {"existingSecret": "tks-kek"}},
    "bgs": {"origin": "bgs.example.com/baselines", "adminTokens": {"existingSecret": "bgs-admin"},
            "keys": {"existingSecret": "bgs-keys"}},
}  # fmt: skip
#: Every optional part switched on (and the other choice of each either/or value).
EVERYTHING: dict[str, Any] = {
    "image": {"digest": DIGEST, "pullSecrets": ["registry"]},
    "tls": {"existingSecret": "teeplane-tls"},
    "etcd": {"bundled": {"enabled": True, "image": {"digest": DIGEST}}},
    "operator": {"namespaces": ["apps", "more-apps"], "nodeSelector": {"kubernetes.io/os": "linux"},
                 "baselineTrust": BASELINE_TRUST, "resyncInterval": 60},
    "ras": {"adminTokens": {"existingSecret": "ras-admin"}, "extraArgs": ["--pcs-url", "https://pccs.example"],
            "persistence": {"storageClass": "fast"}},
    "tks": {"adminTokens": {"existingSecret": "tks-admin"}, "podAntiAffinity": "preferred",
            "kek": {"mode": "pkcs11"}, "env": [{"name": "TEEPLANE_TKS_PKCS11_MODULE", "value": "/hsm/libhsm.so"}],
            "extraVolumes": [{"name": "hsm", "hostPath": {"path": "/opt/hsm"}}],
            "extraVolumeMounts": [{"name": "hsm", "mountPath": "/hsm", "readOnly": True}]},
    "bgs": {"origin": "bgs.example.com/baselines", "adminTokens": {"existingSecret": "bgs-admin"},
            "keys": {"existingSecret": "bgs-keys"}},
    "runtimeClasses": {"create": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
}  # fmt: skip


@dataclass(frozen=True)
class Tools:
    """helm, kubeconform, and the schema directories kubeconform reads (Kubernetes; the chart's CRDs)."""

    helm: Path
    kubeconform: Path
    kube_schemas: Path
    crd_schemas: Path


def _hack(script: str) -> list[str]:
    # The schema converter needs PyYAML: this interpreter's environment has it.
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = ["bash", str(REPO / "hack" / script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT, env=env, check=False)
    if done.returncode != 0:
        pytest.fail(f"hack/{script} failed:\n{done.stderr[-4000:]}")
    return done.stdout.split()


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    (helm_dir,) = _hack("helm.sh")
    kubeconform_dir, kube_schemas = _hack("kubeconform.sh")
    crd_schemas = tmp_path_factory.mktemp("crd-schemas")
    converter = [sys.executable, str(REPO / "hack" / "jsonschemas.py"), "crd", str(crd_schemas)]
    subprocess.run([*converter, *map(str, sorted((CHART / "crds").glob("*.yaml")))], check=True, timeout=60)
    return Tools(Path(helm_dir) / "helm", Path(kubeconform_dir) / "kubeconform", Path(kube_schemas), crd_schemas)


@pytest.fixture(scope="session")
def values_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The value sets every render test covers, as files: required values only, and everything on."""
    directory = tmp_path_factory.mktemp("values")
    files = {"required": directory / "required.yaml", "everything": directory / "everything.yaml"}
    files["required"].write_text(yaml.safe_dump(REQUIRED))
    files["everything"].write_text(yaml.safe_dump(EVERYTHING))
    return files


def helm(tools: Tools, *args: str, namespace: str = OPERATOR_NAMESPACE) -> subprocess.CompletedProcess[str]:
    """Run helm on the chart's release `teeplane` in `namespace` (not checked)."""
    return subprocess.run(
        [str(tools.helm), *args, "--namespace", namespace], capture_output=True, text=True, timeout=120, check=False
    )


def template(
    tools: Tools, values: Path, *args: str, namespace: str = OPERATOR_NAMESPACE
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart with `values` (not checked)."""
    return helm(tools, "template", "teeplane", str(CHART), "--values", str(values), *args, namespace=namespace)


def render(tools: Tools, values: Path, *args: str) -> str:
    """`helm template` of the chart with `values`; fails the test if it fails."""
    done = template(tools, values, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def kubeconform(tools: Tools, manifest: str) -> subprocess.CompletedProcess[str]:
    """kubeconform -strict over `manifest` with only the offline schemas, every kind required to have one."""
    return subprocess.run(
        [
            str(tools.kubeconform), "-strict", "-summary", "-output", "text",
            "-schema-location", f"{tools.kube_schemas}/{SCHEMA_FILE}",
            "-schema-location", f"{tools.crd_schemas}/{SCHEMA_FILE}",
        ],
        input=manifest, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("values", ["required", "everything"])
def test_lint_is_clean(tools: Tools, values_files: dict[str, Path], values: str) -> None:
    done = helm(tools, "lint", "--strict", str(CHART), "--values", str(values_files[values]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("values", ["required", "everything"])
def test_render_passes_kubeconform_strict(tools: Tools, values_files: dict[str, Path], values: str) -> None:
    manifest = render(tools, values_files[values], "--include-crds")
    done = kubeconform(tools, manifest)
    assert done.returncode == 0, done.stdout + done.stderr
    # Every document was checked against a schema: none skipped, none without one.
    assert "Invalid: 0, Errors: 0, Skipped: 0" in done.stdout, done.stdout
    kinds = {doc["kind"] for doc in documents(manifest)}
    assert {"CustomResourceDefinition", "Deployment", "StatefulSet", "PodDisruptionBudget"} <= kinds
    if values == "everything":
        assert {"ServiceMonitor", "RuntimeClass", "NetworkPolicy", "ClusterKopfPeering"} <= kinds


@pytest.mark.parametrize(
    ("kind", "field"),
    [("Deployment", ["spec", "template", "spec"]), ("ConfidentialWorkload", ["spec"])],
)
def test_kubeconform_schemas_refuse_unknown_fields(tools: Tools, kind: str, field: list[str]) -> None:
    """The generated schemas are strict: a misspelt field fails (so a clean run above means something)."""
    example = REPO / "examples" / "confidentialworkload.yaml"
    # A number where the API has a resource.Quantity (a string) is what YAML authors write: accepted.
    container = {"name": "c", "image": "i", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [container]}}},
    }  # fmt: skip
    manifest = deployment if kind == "Deployment" else yaml.safe_load(example.read_text())
    assert kubeconform(tools, yaml.safe_dump(manifest)).returncode == 0
    target: dict[str, Any] = manifest
    for key in field:
        target = target[key]
    target["replicaz"] = 3
    done = kubeconform(tools, yaml.safe_dump(manifest))
    assert done.returncode == 1
    assert "replicaz" in done.stdout


def test_render_has_the_shape_the_chart_promises(tools: Tools, values_files: dict[str, Path]) -> None:
    manifest = render(tools, values_files["required"])
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents(manifest)}
    tks = objects[("StatefulSet", "teeplane-tks")]["spec"]
    assert tks["replicas"] == 3
    assert tks["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert objects[("PodDisruptionBudget", "teeplane-tks")]["spec"]["maxUnavailable"] == 1
    operator = objects[("Deployment", "teeplane-operator")]["spec"]
    assert operator["replicas"] == 2
    args = operator["template"]["spec"]["containers"][0]["args"]
    trust = objects[("ConfigMap", "teeplane-operator-baseline-trust")]["data"]
    assert "--baseline-signer-key=/etc/teeplane/baseline-trust/signer-0.pem" in args
    assert "--baseline-log-key=/etc/teeplane/baseline-trust/log.vkey" in args
    assert (trust["signer-0.pem"], trust["log.vkey"]) == (BASELINE_TRUST["signerKeys"][0], BASELINE_TRUST["logKey"])
    # The webhook: one certificate for every replica, behind a Service the configuration names.
    webhook = objects[("Service", "teeplane-operator-webhook")]["spec"]
    assert webhook["selector"].items() <= operator["template"]["metadata"]["labels"].items()
    assert [(p["port"], p["targetPort"]) for p in webhook["ports"]] == [(443, "webhook")]
    assert "--webhook-service=teeplane-system/teeplane-operator-webhook" in args
    assert "--webhook-tls-dir=/etc/teeplane/webhook-tls" in args
    tls = {name: base64.b64decode(value) for name, value in
           objects[("Secret", "teeplane-operator-webhook-tls")]["data"].items()}  # fmt: skip
    served, authority = x509.load_pem_x509_certificate(tls["tls.crt"]), x509.load_pem_x509_certificate(tls["ca.crt"])
    served.verify_directly_issued_by(authority)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "teeplane-operator-webhook.teeplane-system.svc" in names.get_values_for_type(x509.DNSName)
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):  # the release owns them
        assert objects[(kind, WEBHOOK_CONFIGURATION)]["webhooks"] == []  # the name the operator fills in
    assert objects[("StatefulSet", "teeplane-bgs")]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    assert ("ServiceMonitor", "teeplane-ras") not in objects
    assert not any(kind == "RuntimeClass" for kind, _ in objects)
    for obj in objects.values():
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["image"] == f"ghcr.io/teeplane/teeplane@{DIGEST}"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert "readinessProbe" in container and "livenessProbe" in container


@pytest.mark.kube
def test_render_is_accepted_by_the_api_server(
    tools: Tools,
    values_files: dict[str, Path],
    kubeconfig: Path,  # noqa: F811
) -> None:
    """The CRDs and RBAC installed as the operator tests install them; everything else a server-side dry run.
    ServiceMonitor is not a kind this cluster knows, so that render leaves them out."""
    kubectl = Kubectl(kubeconfig)
    install_chart(kubectl)
    for values in values_files.values():
        manifest = render(tools, values, "--set", "serviceMonitor.enabled=false")
        done = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest)
        assert "statefulset.apps/teeplane-tks created (server dry run)" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("image.digest", "image.digest is required"),
        ("bgs.origin", "bgs.origin is required"),
        ("etcd.endpoints", "etcd.endpoints is required"),
        ("tks.kek.existingSecret", "tks.kek.existingSecret is required"),
        ("ras.adminTokens.existingSecret", "ras.adminTokens.existingSecret is required"),
        ("operator.baselineTrust.logKey", "operator.baselineTrust.logKey is required"),
    ],
)
def test_missing_required_value_fails_naming_it(
    tools: Tools, values_files: dict[str, Path], unset: str, message: str
) -> None:
    done = template(tools, values_files["required"], "--set", f"{unset}=")
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator.replicas=two", "at '/operator/replicas': got string, want integer"),
        ("image.digest=sha256:short", "at '/image/digest': 'sha256:short' does not match pattern"),
        ("tks.kek.mode=vault", "at '/tks/kek/mode': value must be one of 'file', 'pkcs11'"),
        ("operator.replicaz=2", "at '/operator': additional properties 'replicaz' not allowed"),
    ],
)
def test_schema_refuses_a_wrong_value(tools: Tools, values_files: dict[str, Path], setting: str, message: str) -> None:
    done = template(tools, values_files["required"], "--set", setting)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr


def test_other_namespace_is_refused(tools: Tools, values_files: dict[str, Path]) -> None:
    done = template(tools, values_files["required"], namespace="default")
    assert done.returncode != 0
    assert "install TEEPlane into the namespace teeplane-system" in done.stderr
