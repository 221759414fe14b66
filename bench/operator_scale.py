"""Benchmark: the operator under 500 ConfidentialWorkloads.

The real stack from tests/support/operator_stack.py: a cluster from hack/cluster.sh (or
TEEPLANE_KUBECONFIG), the chart's CRDs and RBAC, etcd + RAS + TKS, the local BGS, and one
`teeplane operator run` (webhooks on) under the chart's service account. This process creates N
workloads in one namespace (`--concurrency` concurrent POSTs, or open loop at `--rate` per second)
and watches Deployments and ConfidentialWorkloads as they change. Measured:

* time from the first create to the last Deployment, and to the last status with Deployed=True;
* apply-to-Deployment latency per workload: from sending its create to seeing its Deployment
  in the watch (p50, p90, p99, max);
* the operator's peak RSS (VmHWM) at the end.

Workloads have `--replicas` pods each (default 0: kwok's three fake nodes hold 330 pods, and this
measures the operator, not the scheduler). Bounded: the run gives up after `--timeout` seconds.

Usage: python bench/operator_scale.py [--count 500] [--concurrency 8] [--rate 0] [--replicas 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE.parent / "tests" / "support")]
from kube_cluster import kube_cluster  # noqa: E402
from operator_stack import (  # noqa: E402
    Kubectl,
    Operator,
    install_chart,
    service_account_kubeconfig,
    services,
    workload,
)

NAMESPACE = "bench"
CW_PATH = f"/apis/teeplane.io/v1alpha1/namespaces/{NAMESPACE}/confidentialworkloads"


def admin_client(kubeconfig: Path, workdir: Path) -> httpx.AsyncClient:
    """An HTTP client with the kubeconfig's client certificate (the test cluster's admin)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    for name, key in (("ca.crt", "certificate-authority-data"), ("admin.crt", "client-certificate-data"),
                      ("admin.key", "client-key-data")):  # fmt: skip
        (workdir / name).write_bytes(base64.b64decode(cluster.get(key) or user[key]))
    context = ssl.create_default_context(cafile=workdir / "ca.crt")
    context.load_cert_chain(workdir / "admin.crt", workdir / "admin.key")
    limits = httpx.Limits(max_connections=64)
    return httpx.AsyncClient(base_url=cluster["server"], verify=context, limits=limits, timeout=60)


async def watch(client: httpx.AsyncClient, path: str, seen: dict[str, float], done: asyncio.Event, want: int,
                accept: Any) -> None:  # fmt: skip
    """Record when each object first satisfies `accept`; set `done` once `want` have."""
    async with client.stream("GET", path, params={"watch": "1", "timeoutSeconds": "600"}) as response:
        async for line in response.aiter_lines():
            event = json.loads(line)
            if "object" not in event:
                raise RuntimeError(f"watch {path}: {line[:500]}")
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name not in seen and event["type"] != "DELETED" and accept(obj):
                seen[name] = time.monotonic()
                if len(seen) >= want:
                    done.set()
                    return


def deployed(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions", [])
    return any(c["type"] == "Deployed" and c["status"] == "True" for c in conditions)


async def create_all(client: httpx.AsyncClient, bodies: list[dict[str, Any]], concurrency: int, rate: float,
                     sent: dict[str, float]) -> None:  # fmt: skip
    queue: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
    start = time.monotonic()
    for i, body in enumerate(bodies):
        queue.put_nowait((start + i / rate if rate else 0.0, body))

    async def creator() -> None:
        while not queue.empty():
            due, body = queue.get_nowait()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent[body["metadata"]["name"]] = time.monotonic()
            response = await client.post(CW_PATH, json=body)
            if response.status_code != 201:
                raise RuntimeError(f"create {body['metadata']['name']}: {response.status_code} {response.text}")

    await asyncio.gather(*(creator() for _ in range(concurrency)))


async def measure(kubeconfig: Path, workdir: Path, args: argparse.Namespace, baseline: str) -> dict[str, Any]:
    bodies = [workload(f"w{i:04d}", baseline, replicas=args.replicas) for i in range(args.count)]
    sent: dict[str, float] = {}
    deployments: dict[str, float] = {}
    statuses: dict[str, float] = {}
    all_deployments, all_statuses = asyncio.Event(), asyncio.Event()
    async with admin_client(kubeconfig, workdir) as client:
        watchers = [
            asyncio.create_task(watch(client, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", deployments,
                                      all_deployments, args.count, lambda _: True)),
            asyncio.create_task(watch(client, CW_PATH, statuses, all_statuses, args.count, deployed)),
        ]  # fmt: skip
        await asyncio.sleep(1.0)  # the watches are established
        began = time.monotonic()
        await create_all(client, bodies, args.concurrency, args.rate, sent)
        created = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(all_deployments.wait(), all_statuses.wait()), args.timeout)
        finally:
            for task in watchers:
                task.cancel()
    latencies = sorted(deployments[name] - sent[name] for name in deployments)
    cut = statistics.quantiles(latencies, n=100)
    return {
        "workloads": args.count,
        "replicas_each": args.replicas,
        "create_seconds": round(created - began, 2),
        "all_deployments_seconds": round(max(deployments.values()) - began, 2),
        "all_statuses_seconds": round(max(statuses.values()) - began, 2),
        "apply_to_deployment_ms": {
            "p50": round(cut[49] * 1000),
            "p90": round(cut[89] * 1000),
            "p99": round(cut[98] * 1000),
            "max": round(latencies[-1] * 1000),
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rate", type=float, default=0.0, help="creates per second (0: as fast as they go)")
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-webhooks", action="store_true", help="run the operator without its webhooks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="teeplane-operator-bench-")))
        kubeconfig = stack.enter_context(kube_cluster(workdir / "cluster"))
        kubectl = Kubectl(kubeconfig)
        install_chart(kubectl)
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=300s", timeout=310)
        kubectl("create", "namespace", NAMESPACE)
        running = stack.enter_context(services(workdir / "services"))
        baseline = running.bgs.publish("bench", "1")
        sa_kubeconfig = service_account_kubeconfig(kubectl, workdir / "sa.kubeconfig")
        operator = Operator(sa_kubeconfig, running, workdir, webhooks=not args.no_webhooks)
        operator.start(kubectl)
        stack.callback(operator.stop)
        # First (last in), while the operator still runs to let the workloads go.
        stack.callback(kubectl, "delete", "namespace", NAMESPACE, "--timeout=300s", check=False, timeout=310)
        assert operator.process is not None
        idle = cpu_seconds(operator.process.pid)
        result = asyncio.run(measure(kubeconfig, workdir, args, baseline))
        result["operator_cpu_seconds"] = round(cpu_seconds(operator.process.pid) - idle, 1)
        result["operator_peak_rss_mib"] = peak_rss_mib(operator.process.pid)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
