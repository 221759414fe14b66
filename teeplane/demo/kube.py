"""The demo's Kubernetes part: `kubectl apply` the example ConfidentialWorkload and watch the
operator take it to Ready (the local cluster's pods are kwok's: scheduled and reported running,
nothing runs in them)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from teeplane.demo.flow import tks_endpoints
from teeplane.demo.step import Step
from teeplane.dev.stack import Stack
from teeplane.remote import RemoteError
from teeplane.retry import retrying
from teeplane.tks.client import TksClient
from teeplane.tks.models import CreateKey, KeyKind, ReleasePolicy
from teeplane.tls import trusting

EXAMPLE = "confidentialworkload.yaml"
EXAMPLE_NAME, EXAMPLE_NAMESPACE = "ledger", "default"
#: The example's key (its `keys:`), and the secret the demo stores in it.
EXAMPLE_KEY = "ledger-db-password"
READY_TIMEOUT = 120.0


def apply_example(stack: Stack, kubeconfig: Path, examples: Path, baseline_id: str) -> Iterator[Step]:
    """Create the example's key, apply the example, and wait for the operator's conditions."""
    tks = TksClient(tks_endpoints(stack), admin_token=stack.admin_token(), verify=trusting(stack.ca_file))
    policy = ReleasePolicy(workloads=[f"{EXAMPLE_NAMESPACE}/{EXAMPLE_NAME}"], baselines=[baseline_id],
                           tee_types=["tdx"])  # fmt: skip

    def ensure_key() -> None:
        try:
            tks.create(CreateKey(id=EXAMPLE_KEY, kind=KeyKind.AES256, policy=policy))
        except RemoteError as error:
            if error.http_status != 409:
                raise
            tks.set_policy(EXAMPLE_KEY, policy)

    retrying(ensure_key, 30.0)
    applied = _kubectl(kubeconfig, "apply", "-f", str(examples / EXAMPLE))
    yield Step(
        f"kubectl apply -f examples/{EXAMPLE}",
        applied.returncode == 0,
        (applied.stdout or applied.stderr).strip() + f"\n(key {EXAMPLE_KEY} created at TKS for {EXAMPLE_NAMESPACE}/"
        f"{EXAMPLE_NAME} first: the admission webhook refuses workloads whose keys do not exist)",
    )
    if applied.returncode != 0:
        return
    conditions = _wait_ready(kubeconfig)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    table = "\n".join(f"{c.get('type'):<27} {c.get('status'):<7} {c.get('reason')}: {c.get('message')}"
                      for c in conditions)  # fmt: skip
    yield Step("the operator's status conditions reach Ready", ready, table or "no conditions yet")


def _wait_ready(kubeconfig: Path) -> list[dict[str, Any]]:
    """The workload's conditions once Ready is True, or as they are after READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    conditions: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got = _kubectl(kubeconfig, "get", "confidentialworkload", EXAMPLE_NAME, "-n", EXAMPLE_NAMESPACE, "-o", "json")
        if got.returncode == 0:
            conditions = json.loads(got.stdout).get("status", {}).get("conditions", [])
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                break
        time.sleep(1.0)
    return conditions


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
