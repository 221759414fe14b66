"""The operator's pure parts, without a cluster: the generated CRD, rendering, conditions, the checks
of keys, baselines and admission."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from operator_stack import INITDATA, TEEPLANE_IMAGE
from processes import run_teeplane
from securesystemslib.signer import CryptoSigner

from teeplane.baseline.keys import public_pem
from teeplane.baseline.tlog.note import Verifier
from teeplane.operator import render
from teeplane.operator.admission import WorkloadRefusedError, default_runtime_class, parse
from teeplane.operator.conditions import Outcome, Transition, merge, rollout, transitions
from teeplane.operator.config import RenderConfig, default_placements
from teeplane.operator.crd import CHART_CRD_PATH, crd, crd_yaml, structural
from teeplane.operator.handlers import configure
from teeplane.operator.model import CONDITION_TYPES, ConfidentialWorkloadSpec
from teeplane.operator.persistence import ANNOTATIONS_PREFIX, MARKER, HandledSpecs, ProgressAnnotations
from teeplane.operator.reconcile import changed_since
from teeplane.operator.steps import key_problems
from teeplane.tks.models import KeyKind, KeyMetadata, ReleasePolicy
from teeplane.tls import CertificateAuthority

LOG_KEY = Verifier("bgs.test/baselines", b"k" * 32).vkey
REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/app@sha256:" + "cd" * 32
CONFIG = RenderConfig(TEEPLANE_IMAGE, "https://ras.example", "https://tks.example")


def spec(**changes: Any) -> ConfidentialWorkloadSpec:
    base = {"tee": "tdx", "baseline": "app@1", "initdata": INITDATA,
            "template": {"containers": [{"name": "app", "image": IMAGE}]}}  # fmt: skip
    return ConfidentialWorkloadSpec.model_validate(base | changes)


def test_the_chart_holds_the_generated_crd() -> None:
    """One source of truth: `teeplane operator crd --output charts/...` regenerates the chart's file."""
    assert (REPO / CHART_CRD_PATH).read_text() == crd_yaml()


def test_the_crd_schema_is_structural() -> None:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            assert not {"$ref", "anyOf", "allOf", "oneOf", "$defs", "title"} & set(node), path
            assert "type" in node or node.get("x-kubernetes-int-or-string"), path
            for key, value in node.get("properties", {}).items():
                walk(value, f"{path}.{key}")
            for key in ("items", "additionalProperties"):
                if isinstance(node.get(key), dict):
                    walk(node[key], f"{path}.{key}")

    walk(schema, "")
    spec_schema = schema["properties"]["spec"]
    assert spec_schema["properties"]["tee"]["enum"] == ["tdx", "snp", "sim"]
    assert (spec_schema["properties"]["replicas"]["minimum"], spec_schema["properties"]["replicas"]["maximum"]) == (
        0,
        100,
    )
    assert schema["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_structural_refuses_what_kubernetes_cannot_express() -> None:
    with pytest.raises(ValueError, match="cannot express anyOf"):
        structural({"anyOf": [{"type": "string"}, {"type": "boolean"}]})
    assert structural({"anyOf": [{"type": "integer"}, {"type": "string"}], "title": "Q"}) == {
        "x-kubernetes-int-or-string": True
    }


def test_the_deployment_for_each_tee() -> None:
    expected = [
        ("tdx", "kata-qemu-tdx", ("teeplane.io/tee", "tdx")),
        ("snp", "kata-qemu-snp", ("teeplane.io/tee", "snp")),
        ("sim", "kata-qemu-coco-dev", ("katacontainers.io/kata-runtime", "true")),
    ]
    for tee, runtime_class, label in expected:
        deployment = render.deployment("app", "ns", "uid-1", spec(tee=tee), CONFIG)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["runtimeClassName"] == runtime_class
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": label[0], "operator": "In", "values": [label[1]]}]}]
        provider = pod["initContainers"][0]["args"][3]
        assert provider == ("simulated" if tee == "sim" else "configfs")
    given_class = render.deployment("app", "ns", "u", spec(runtimeClassName="kata-custom"), CONFIG)
    assert given_class["spec"]["template"]["spec"]["runtimeClassName"] == "kata-custom"


def test_a_ca_bundle_reaches_the_agent_as_a_file() -> None:
    bundle = CertificateAuthority.generate("services").cert_pem.decode()
    plain = render.deployment("app", "ns", "uid-1", spec(), CONFIG)["spec"]["template"]
    assert render.CA_ANNOTATION not in plain["metadata"]["annotations"]
    assert "--ca-file" not in plain["spec"]["initContainers"][1]["args"]

    pod = render.deployment("app", "ns", "uid-1", spec(), dataclasses.replace(CONFIG, ca_bundle=bundle))["spec"]
    template = pod["template"]
    assert template["metadata"]["annotations"][render.CA_ANNOTATION] == bundle
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == render.CA_VOLUME)
    assert volume["downwardAPI"]["items"] == [
        {"path": "ca.crt", "fieldRef": {"fieldPath": f"metadata.annotations['{render.CA_ANNOTATION}']"}}
    ]
    agent = template["spec"]["initContainers"][1]
    assert {"name": render.CA_VOLUME, "mountPath": "/run/teeplane/ca", "readOnly": True} in agent["volumeMounts"]
    assert agent["args"][agent["args"].index("--ca-file") + 1] == "/run/teeplane/ca/ca.crt"
    assert all(render.CA_VOLUME not in str(c) for c in template["spec"]["containers"])  # the agent's alone


def test_rendering_is_deterministic_and_the_initdata_round_trips() -> None:
    first = render.deployment("app", "ns", "u", spec(keys={"b": "x/b", "a": "a"}), CONFIG)
    second = render.deployment("app", "ns", "u", spec(keys={"a": "a", "b": "x/b"}), CONFIG)
    assert json.dumps(first) == json.dumps(second)
    annotation = first["spec"]["template"]["metadata"]["annotations"][render.INITDATA_ANNOTATION]
    assert gzip.decompress(base64.b64decode(annotation)).decode() == INITDATA
    agent = first["spec"]["template"]["spec"]["initContainers"][1]
    assert agent["args"][-4:] == ["--key", "a=a", "--key", "b=x/b"]
    assert first["spec"]["selector"] == {"matchLabels": {"teeplane.io/workload": "app"}}


def test_the_teeplane_image_must_be_pinned() -> None:
    with pytest.raises(ValueError, match="pinned by digest"):
        RenderConfig("registry.example/teeplane:latest", "r", "t")


def test_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    first = merge([], [Outcome.unknown("Attested", "WaitingForPods", "0 of 1")], 1, "T1")
    second = merge(first, [Outcome.unknown("Attested", "WaitingForPods", "0 of 2")], 2, "T2")
    assert (second[0].last_transition_time, second[0].message, second[0].observed_generation) == ("T1", "0 of 2", 2)
    third = merge(second, [Outcome.true("Attested", "PodsAttested", "2 of 2")], 2, "T3")
    assert third[0].last_transition_time == "T3"
    assert transitions(first, second) is None
    assert transitions(second, third) == Transition("Normal", "PodsAttested", "Attested is True (PodsAttested): 2 of 2")
    assert transitions([], first) is None  # nothing happened yet
    many = [Outcome.true("BaselineVerified", "Verified", "b"), Outcome.false("KeysBound", "KeyNotFound", "k"),
            Outcome.false("Deployed", "PrerequisitesNotMet", "d")]  # fmt: skip
    assert transitions([], merge([], many, 1, "T")) == Transition(
        "Warning", "KeyNotFound",
        "BaselineVerified is True (Verified): b; KeysBound is False (KeyNotFound): k; "
        "Deployed is False (PrerequisitesNotMet): d",
    )  # fmt: skip
    done = merge([], [Outcome.true("Deployed", "Applied", "d"), Outcome.true("Ready", "Ready", "r")], 1, "T")
    assert transitions([], done) == Transition(
        "Normal", "Ready", "Deployed is True (Applied): d; Ready is True (Ready): r"
    )


@given(
    st.lists(st.tuples(st.sampled_from(CONDITION_TYPES), st.sampled_from(["True", "False", "Unknown"])), max_size=20)
)
def test_merged_conditions_are_one_per_type_in_order(steps: list[tuple[Any, Any]]) -> None:
    conditions: list[Any] = []
    for step, (kind, status) in enumerate(steps):
        conditions = merge(conditions, [Outcome(kind, status, "Reason", "")], 1, f"T{step}")
    types = [c.type for c in conditions]
    assert types == [t for t in CONDITION_TYPES if t in types] and len(set(types)) == len(types)
    assert {c.type: c.status for c in conditions} == dict(steps)


def test_rollout() -> None:
    deployed = Outcome.true("Deployed", "Applied", "")
    assert [(o.status, o.reason) for o in rollout(deployed, 2, 2, 2)] == [("True", "PodsAttested"), ("True", "Ready")]
    assert [(o.status, o.reason) for o in rollout(deployed, 2, 2, 1)] == [
        ("Unknown", "WaitingForPods"), ("Unknown", "WaitingForPods")
    ]  # fmt: skip
    blocked = Outcome.false("Deployed", "PrerequisitesNotMet", "not yet")
    assert rollout(blocked, 1, 1, 1)[1] == Outcome.false("Ready", "PrerequisitesNotMet", "not yet")
    assert [o.reason for o in rollout(deployed, 0, 0, 0)] == ["NoPods", "Ready"]


def key(**policy: Any) -> KeyMetadata:
    now = datetime.now(UTC)
    return KeyMetadata(id="k", kind=KeyKind.AES256, created_at=now, versions=[{"version": 1, "created_at": now}],
                       policy=ReleasePolicy(**({"workloads": ["ns/app"], "baselines": ["b1"]} | policy)))  # fmt: skip


def test_key_policies_must_release_to_the_workload() -> None:
    assert key_problems(key(), "ns/app", "b1", "tdx") == []
    assert key_problems(key(any_baseline=True, baselines=[]), "ns/app", "b2", "snp") == []
    assert key_problems(key(), "ns/other", "b2", "tdx") == [
        "key k's release policy does not name workload ns/other",
        "key k's release policy does not accept baseline b2",
    ]
    assert key_problems(key(tee_types=["snp"]), "ns/app", "b1", "sim") == [
        "key k's release policy does not accept tdx evidence",
        "key k's release policy does not accept simulated evidence",
    ]
    assert key_problems(key(allow_simulated=True), "ns/app", "b1", "sim") == []


def test_admission_parses_with_messages_naming_the_field() -> None:
    with pytest.raises(WorkloadRefusedError) as refused:
        parse({**spec().model_dump(by_alias=True), "tee": "sgx", "replicas": 500})
    assert str(refused.value) == (
        "spec.tee: Input should be 'tdx', 'snp' or 'sim'; spec.replicas: Input should be less than or equal to 100"
    )


def test_the_runtime_class_is_defaulted_and_follows_the_tee() -> None:
    placements = default_placements()
    assert default_runtime_class({"tee": "snp"}, None, placements) == "kata-qemu-snp"
    assert default_runtime_class({"tee": "snp", "runtimeClassName": "mine"}, None, placements) is None
    moved = {"tee": "snp", "runtimeClassName": "kata-qemu-tdx"}
    assert default_runtime_class(moved, {"tee": "tdx"}, placements) == "kata-qemu-snp"
    assert default_runtime_class({"tee": "sgx"}, None, placements) is None
    assert (
        default_runtime_class({"tee": "tdx", "runtimeClassName": "kata-qemu-tdx"}, {"tee": "tdx"}, placements) is None
    )


def test_the_example_is_a_valid_workload() -> None:
    example = yaml.safe_load((REPO / "examples" / "confidentialworkload.yaml").read_text())
    parsed = ConfidentialWorkloadSpec.model_validate(example["spec"])
    assert (parsed.tee, parsed.replicas, dict(parsed.keys)) == ("tdx", 2, {"ledger-db-password": "db/password"})


def test_the_crd_command_prints_the_chart_file(tmp_path: Path) -> None:
    printed = run_teeplane("operator", "crd", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (REPO / CHART_CRD_PATH).read_text()
    written = run_teeplane("operator", "crd", "--output", str(tmp_path / "crd.yaml"), cwd=tmp_path)
    assert written.returncode == 0 and (tmp_path / "crd.yaml").read_text() == printed.stdout


def test_operator_run_refuses_an_unpinned_image_and_bad_runtime_classes(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "signer.pub").write_bytes(public_pem(CryptoSigner.generate_ed25519()))
    common = ["operator", "run", "--ras-url", "http://r", "--ras-token-file", str(tmp_path / "token"), "--tks-url",
              "http://t", "--tks-token-file", str(tmp_path / "token"), "--bgs-url", "http://b",
              "--baseline-log-key", LOG_KEY]  # fmt: skip
    keyless = run_teeplane(*common, "--teeplane-image", TEEPLANE_IMAGE, cwd=tmp_path)
    assert keyless.returncode == 2 and "--baseline-signer-key" in keyless.stderr
    common += ["--baseline-signer-key", str(tmp_path / "signer.pub")]
    not_a_key = run_teeplane(*common, "--teeplane-image", TEEPLANE_IMAGE, "--baseline-signer-key",
                             str(tmp_path / "token"), cwd=tmp_path)  # fmt: skip
    assert not_a_key.returncode == 2 and f"--baseline-signer-key {tmp_path / 'token'} is not" in not_a_key.stderr
    unpinned = run_teeplane(*common, "--teeplane-image", "registry.example/teeplane:1", cwd=tmp_path)
    assert unpinned.returncode == 2 and "must be pinned by digest" in unpinned.stderr
    bad = run_teeplane(*common, "--teeplane-image", TEEPLANE_IMAGE, "--runtime-class", "sgx=kata", cwd=tmp_path)
    assert bad.returncode == 2 and "expected TEE=NAME with TEE one of tdx, snp, sim" in bad.stderr
    not_a_ca = run_teeplane(*common, "--teeplane-image", TEEPLANE_IMAGE, "--ca-file", str(tmp_path / "token"),
                            cwd=tmp_path)  # fmt: skip
    assert not_a_ca.returncode == 2 and f"CA file {tmp_path / 'token'} holds no PEM certificate" in not_a_ca.stderr
    assert "Traceback" not in not_a_ca.stderr
    shared = run_teeplane(*common, "--teeplane-image", TEEPLANE_IMAGE, "--webhook-service", "teeplane-system/hook",
                          cwd=tmp_path)  # fmt: skip
    assert shared.returncode == 2 and "--webhook-service needs --webhook-tls-dir" in shared.stderr.replace("\n", " ")


def test_only_newer_versions_count_as_drift() -> None:
    assert changed_since("3", "4") and not changed_since("4", "3") and not changed_since("4", "4")
    assert changed_since(None, "1") and changed_since("a", "b") and not changed_since("a", "a")


def test_kopf_writes_progress_annotations_only_while_there_is_progress_to_keep() -> None:
    storage, body = ProgressAnnotations(), kopf.Body({"metadata": {"name": "w", "annotations": {}}})
    record: kopf.ProgressRecord = {"started": "2026-11-22T00:00:00", "retries": 1, "success": True}
    reconcile, unregister = kopf.HandlerId("reconcile"), kopf.HandlerId("unregister")

    patch = kopf.Patch()
    storage.store(key=reconcile, record=record, body=body, patch=patch)
    assert set(patch["metadata"]["annotations"]) == {MARKER, f"{ANNOTATIONS_PREFIX}/reconcile"}  # a retry's progress
    storage.purge(key=reconcile, body=body, patch=patch)
    assert patch == {}  # succeeded at the first attempt: nothing to PATCH

    patch = kopf.Patch()
    for handler in (reconcile, unregister):
        storage.store(key=handler, record=record, body=body, patch=patch)
    storage.purge(key=reconcile, body=body, patch=patch)
    assert set(patch["metadata"]["annotations"]) == {MARKER, f"{ANNOTATIONS_PREFIX}/unregister"}

    kept = {MARKER: "yes", f"{ANNOTATIONS_PREFIX}/reconcile": "{}"}
    marked = kopf.Body({"metadata": {"name": "w", "annotations": kept}})
    patch = kopf.Patch()
    storage.purge(key=reconcile, body=marked, patch=patch)
    assert patch == {"metadata": {"annotations": {f"{ANNOTATIONS_PREFIX}/reconcile": None}}}  # the marker stays


def test_the_watches_select_every_object_the_operator_renders() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, None, HandledSpecs())
    deployment = render.deployment("app", "ns", "uid-1", spec(), CONFIG)
    rendered = {
        "deployments": deployment["metadata"]["labels"],
        "services": render.service("app", "ns", "uid-1", spec())["metadata"]["labels"],
        "pods": deployment["spec"]["template"]["metadata"]["labels"],
    }
    selectors = {key.any_name: value for key, value in settings.watching.label_selectors.items()}
    assert set(selectors) == set(rendered)  # and nothing else: the ConfidentialWorkloads are all watched
    for plural, labels in rendered.items():
        for requirement in selectors[plural].split(","):
            name, _, value = requirement.partition("=")
            assert labels.get(name) == value, f"the {plural} watch would miss the operator's own: {requirement}"
