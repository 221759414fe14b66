"""The operator's own life: killed in the middle of a reconcile, RAS down while a workload is deleted,
two replicas with one active, and the periodic resync. Each test leaves the session's operator running."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from operator_stack import (
    ADMIN_TOKEN,
    Kubectl,
    NamespaceFactory,
    Operator,
    Services,
    condition,
    event_messages,
    events,
    wait_condition,
    wait_for,
    workload,
)
from processes import free_ports

pytestmark = pytest.mark.kube


@contextmanager
def stopped(kubectl: Kubectl, operator: Operator, *, crash: bool) -> Iterator[None]:
    """The operator killed (SIGKILL) or stopped (SIGTERM) for the block, then started again."""
    operator.kill() if crash else operator.stop()
    try:
        yield
    finally:
        operator.start(kubectl)


def owned(kubectl: Kubectl, kind: str, ns: str) -> list[str]:
    listed = kubectl.get(kind, "-n", ns, "-l", "app.kubernetes.io/managed-by=teeplane-operator")
    return sorted(item["metadata"]["name"] for item in listed["items"])


def test_a_restart_in_the_middle_of_reconciling_converges(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    gone = stack.bgs.publish("doomed", "1")
    kubectl.apply(workload("doomed", gone), "-n", ns)
    wait_condition(kubectl, ns, "doomed", "Deployed", "True")
    slow = stack.bgs.publish("slow", "1")
    stack.bgs.delays[slow] = 4.0
    kubectl.apply(workload("slow", slow, replicas=2), "-n", ns)
    wait_for("the operator to be in the middle of reconciling", lambda: slow in stack.bgs.requests)
    with stopped(kubectl, operator, crash=True):
        del stack.bgs.delays[slow]
        # While no operator runs: the webhook fails closed, deletions wait for the finalizer.
        edit = kubectl("patch", "cw", "slow", "-n", ns, "--type=merge", "-p", '{"spec": {"replicas": 3}}', check=False)
        assert edit.returncode != 0 and "failed calling webhook" in edit.stderr, edit.stderr
        assert "teeplane-operator.teeplane.io" in edit.stderr
        kubectl("delete", "cw", "doomed", "-n", ns, "--wait=false")
        assert kubectl.get("cw", "doomed", "-n", ns)["metadata"]["deletionTimestamp"]
        assert kubectl.get("deployment", "slow", "-n", ns) is None
    cw = wait_condition(kubectl, ns, "slow", "Ready", "True", timeout=60)
    assert cw["status"]["attestedReplicas"] == 2
    wait_for("the deleted workload to be finalized", lambda: kubectl.get("cw", "doomed", "-n", ns) is None)
    assert stack.reference_values(ns, "doomed").status_code == 404
    assert stack.reference_values(ns, "slow").status_code == 200
    wait_for("no orphans", lambda: owned(kubectl, "deployments", ns) == owned(kubectl, "services", ns) == ["slow"])
    replica_sets = kubectl.get("replicasets", "-n", ns, "-l", "teeplane.io/workload=slow")["items"]
    assert len(replica_sets) == 1
    assert len([p for p in kubectl.get("pods", "-n", ns)["items"] if not p["metadata"].get("deletionTimestamp")]) == 2


def test_deletion_never_waits_forever_for_ras(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    baseline = stack.bgs.publish("stuck", "1")
    kubectl.apply(workload("stuck", baseline), "-n", ns)
    wait_condition(kubectl, ns, "stuck", "Deployed", "True")
    stack.ras_process.stop()
    try:
        kubectl("delete", "cw", "stuck", "-n", ns, "--wait=false")
        wait_for(
            "the workload to be deleted although RAS is down", lambda: kubectl.get("cw", "stuck", "-n", ns) is None
        )
        warnings = kubectl.get("events", "-n", ns, "--field-selector", "reason=UnregisterFailed")["items"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert warnings[0]["message"].startswith(f"gave up unregistering {ns}/stuck at RAS after 3 attempts")
    finally:
        stack.ras_process.start()
    # What it could not remove is still there, as the Event says.
    assert stack.reference_values(ns, "stuck").status_code == 200


def test_a_ras_outage_is_reported_and_recovered_from(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    ns = namespace()
    baseline = stack.bgs.publish("patient", "1")
    stack.ras_process.stop()
    try:
        kubectl.apply(workload("patient", baseline), "-n", ns)
        cw = wait_condition(kubectl, ns, "patient", "ReferenceValuesRegistered", "Unknown")
        assert condition(cw, "ReferenceValuesRegistered")["reason"] == "RasUnavailable"
        assert "service.unreachable" in condition(cw, "ReferenceValuesRegistered")["message"]
        assert kubectl.get("deployment", "patient", "-n", ns) is None
        assert ("Warning", "RasUnavailable") in events(kubectl, ns, "patient")
    finally:
        stack.ras_process.start()
    wait_condition(kubectl, ns, "patient", "Ready", "True", timeout=60)
    recovered = [m for m in event_messages(kubectl, ns, "patient") if "ReferenceValuesRegistered is True" in m]
    assert recovered and "Deployed is True (Applied)" in recovered[0]


def test_two_replicas_one_active(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    standby = dataclasses.replace(operator, name="standby", priority=50, webhooks=False, process=None)
    standby.webhook_port, standby.liveness_port = free_ports(2)
    standby.start()
    try:

        def priorities() -> list[int]:
            peers = kubectl.get("clusterkopfpeering", "teeplane-operator").get("status") or {}
            return sorted(peer["priority"] for peer in peers.values())

        wait_for("both replicas in the peering", lambda: priorities() == [50, 100])
        ns = namespace()
        baseline = stack.bgs.publish("handover", "1")
        kubectl.apply(workload("first", baseline), "-n", ns)
        wait_condition(kubectl, ns, "first", "Deployed", "True")
        assert f"{ns}/first: " in operator.log.read_text()  # the active replica's log of its Events
        assert f"{ns}/first: " not in standby.log.read_text()
        with stopped(kubectl, operator, crash=False):
            wait_for("the standby to take over", lambda: "Resuming operations" in standby.log.read_text())
            kubectl.apply(workload("second", baseline), "-n", ns)
            wait_condition(kubectl, ns, "second", "Deployed", "True")
            assert f"{ns}/second: " in standby.log.read_text()
            standby.stop()
    finally:
        standby.stop()


def test_a_periodic_resync_repairs_registration_and_rechecks_keys(
    kubectl: Kubectl, stack: Services, operator: Operator, namespace: NamespaceFactory
) -> None:
    resyncing = dataclasses.replace(operator, name="resyncing", extra=["--resync-interval", "2"], process=None)
    resyncing.webhook_port, resyncing.liveness_port = free_ports(2)
    with stopped(kubectl, operator, crash=False):
        resyncing.start(kubectl)
        try:
            ns = namespace()
            baseline = stack.bgs.publish("kept", "1")
            key = f"{ns}.kept"
            stack.create_key(key, [f"{ns}/kept"], [baseline])
            kubectl.apply(workload("kept", baseline, keys={key: "k"}), "-n", ns)
            wait_condition(kubectl, ns, "kept", "Deployed", "True")
            # RAS lost the registration (say, restored from an old backup): the resync registers it again.
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            gone = httpx.delete(f"{stack.ras}/v1/reference-values/{ns}/kept", headers=headers, timeout=10)
            assert gone.status_code in (200, 204) and stack.reference_values(ns, "kept").status_code == 404
            wait_for("RAS to hold the workload again", lambda: stack.reference_values(ns, "kept").status_code == 200)
            # The key's policy no longer names the workload: the resync notices.
            stack.set_key_policy(key, [f"{ns}/someone-else"], [baseline])
            cw = wait_condition(kubectl, ns, "kept", "KeysBound", "False")
            assert f"does not name workload {ns}/kept" in condition(cw, "KeysBound")["message"]
        finally:
            resyncing.stop()
