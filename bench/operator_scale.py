"""Benchmark: the operator under 500 ConfidentialWorkloads.

The real stack from tests/support/operator_stack.py: a cluster from hack/cluster.sh (or
TEEPLANE_KUBECONFIG), the chart's CRDs and RBAC, etcd + RAS + TKS, the local BGS, and one
`teeplane operator run` (webhooks on) under the chart's service account, all on this machine.
N workloads go into one namespace, by default as a user applies them: one `kubectl apply -f` of a
file holding all of them (kubectl applies them one after another). `--concurrency C` instead POSTs
them as a burst, C at a time; `--rate R` POSTs them open loop, R per second. Measured, from watches
of Deployments and ConfidentialWorkloads:

* time from the first create to the last Deployment, and to the last status with Deployed=True;
* apply-to-Deployment latency per workload (p50, p90, p99, max): from sending the request that
  applies it (kubectl's first request for it, from its -v=6 log; or our POST) to seeing its
  Deployment; and from the workload being stored (its watch event) to its Deployment;
* the operator's peak RSS (VmHWM) at the end;
* the CPU seconds each process of the stack used meanwhile, and the API server's requests per
  workload by verb and resource (from its /metrics).

Workloads have `--replicas` pods each (default 0: kwok's three fake nodes hold 330 pods, and this
measures the operator, not the scheduler). Bounded: the run gives up after `--timeout` seconds.

Usage: python bench/operator_scale.py [--count 500] [--concurrency C | --rate R] [--replicas 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import ssl
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
OPEN_LOOP_SENDERS = 8
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


async def watch(client: httpx.AsyncClient, path: str, want: int, marks: dict[str, Mark]) -> None:
    """For each mark, record when each object first satisfies it; return once `want` objects have
    satisfied every mark (raise if the watch ends before)."""
    async with client.stream("GET", path, params={"watch": "1", "timeoutSeconds": "600"}) as response:
        async for line in response.aiter_lines():
            event = json.loads(line)
            if "object" not in event:
                raise RuntimeError(f"watch {path}: {line[:500]}")
            obj, now = event["object"], time.monotonic()
            name = obj["metadata"]["name"]
            for mark in marks.values():
                if name not in mark.seen and event["type"] != "DELETED" and mark.accept(obj):
                    mark.seen[name] = now
            if all(len(mark.seen) >= want for mark in marks.values()):
                return
    raise RuntimeError(f"watch {path} ended: {', '.join(f'{n} {len(m.seen)}' for n, m in marks.items())} of {want}")


@dataclass
class Mark:
    """When each object was first seen in a state (`accept`)."""

    accept: Callable[[dict[str, Any]], bool] = lambda _: True
    seen: dict[str, float] = field(default_factory=dict)


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


async def kubectl_apply(kubeconfig: Path, bodies: list[dict[str, Any]], workdir: Path, sent: dict[str, float]) -> None:
    """`kubectl apply -f` one file holding every workload, as a user applies a directory of them.
    Records when kubectl began applying each one: the GET that starts it, from kubectl's request log."""
    manifest = workdir / "workloads.yaml"
    manifest.write_text(yaml.safe_dump_all([body | {"metadata": body["metadata"] | {"namespace": NAMESPACE}}
                                            for body in bodies]))  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "apply", "-f", str(manifest), "-v=6",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, log = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"kubectl apply: exit {process.returncode}: {log.decode()[-2000:]}")
    offset = time.monotonic() - time.time()  # klog stamps the wall clock (UTC on this machine)
    for line in log.decode().splitlines():
        request = _KUBECTL_GET.search(line)
        if request is not None and request["name"] not in sent:
            stamp = datetime.strptime(f"{datetime.now(UTC).year}{request['stamp']}", "%Y%m%d %H:%M:%S.%f")
            began = stamp.replace(tzinfo=UTC).timestamp() - int(request["ms"]) / 1000
            sent[request["name"]] = began + offset
    if len(sent) != len(bodies):
        shown = f"kubectl's log shows {len(sent)} of {len(bodies)} workloads applied"
        raise RuntimeError(f"{shown}:\n{log.decode()[-2000:]}")


#: kubectl -v=6's line for the GET with which it starts applying an object (klog's header, then
#: `"Response" verb="GET" url=".../confidentialworkloads/NAME" status="404 Not Found" milliseconds=2`).
_KUBECTL_GET = re.compile(
    r'^I(?P<stamp>\d{4} [\d:.]+) .*"Response" verb="GET" url="[^"]*/confidentialworkloads/(?P<name>[a-z0-9-]+)"'
    r".* milliseconds=(?P<ms>\d+)"
)


_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<count>\S+)$", re.MULTILINE)


async def api_requests(client: httpx.AsyncClient) -> Counter[str]:
    """Requests the API server has served so far, by verb and resource ("APPLY deployments")."""
    response = await client.get("/metrics")
    response.raise_for_status()
    served: Counter[str] = Counter()
    for match in _REQUESTS.finditer(response.text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        resource = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
        served[f"{labels.get('verb')} {resource}"] += round(float(match["count"]))
    return served


def percentiles(latencies: list[float]) -> dict[str, int]:
    """p50, p90, p99 and max, in milliseconds."""
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": round(cut[49] * 1000), "p90": round(cut[89] * 1000), "p99": round(cut[98] * 1000),
            "max": round(max(latencies) * 1000)}  # fmt: skip


async def measure(kubeconfig: Path, workdir: Path, args: argparse.Namespace, baseline: str) -> dict[str, Any]:
    bodies = [workload(f"w{i:04d}", baseline, replicas=args.replicas) for i in range(args.count)]
    sent: dict[str, float] = {}
    deployments, stored, statuses = Mark(), Mark(), Mark(deployed)
    async with admin_client(kubeconfig, workdir) as client:
        watchers = [
            asyncio.create_task(watch(client, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", args.count,
                                      {"deployment": deployments})),
            asyncio.create_task(watch(client, CW_PATH, args.count, {"stored": stored, "deployed": statuses})),
        ]  # fmt: skip
        await asyncio.sleep(1.0)  # the watches are established
        requests_before = await api_requests(client)
        began = time.monotonic()
        if args.concurrency is None and args.rate is None:
            await kubectl_apply(kubeconfig, bodies, workdir, sent)
        else:
            await create_all(client, bodies, args.concurrency or OPEN_LOOP_SENDERS, args.rate or 0.0, sent)
        created = time.monotonic()
        try:
            # A watch that ends (its stream broke) raises here instead of leaving the run to time out.
            await asyncio.wait_for(asyncio.gather(*watchers), args.timeout)
        finally:
            for task in watchers:
                task.cancel()
        requests = await api_requests(client) - requests_before
    result: dict[str, Any] = {
        "workloads": args.count,
        "replicas_each": args.replicas,
        "mode": f"rate {args.rate}/s" if args.rate else f"burst, concurrency {args.concurrency}"
                if args.concurrency else "kubectl apply -f",
        "create_seconds": round(created - began, 2),
        "all_deployments_seconds": round(max(deployments.seen.values()) - began, 2),
        "all_statuses_seconds": round(max(statuses.seen.values()) - began, 2),
        "apply_to_deployment_ms": percentiles([deployments.seen[n] - sent[n] for n in deployments.seen]),
        "stored_to_deployment_ms": percentiles([deployments.seen[n] - stored.seen[n] for n in deployments.seen]),
    }  # fmt: skip
    result["api_requests_per_workload"] = {
        request: round(count / args.count, 2) for request, count in requests.most_common() if count >= args.count / 10
    }
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component(argv: list[str]) -> str:
    """What a process of the stack is: its program (etcd, kube-apiserver, ...) or its teeplane command."""
    if len(argv) > 4 and argv[1] == "-c":  # python -c "from teeplane.cli import main; main()" ras serve ...
        return " ".join(argv[3:5])
    return Path(argv[0]).name


def cpu_by_component(workdir: Path) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack (those whose command line names `workdir`)."""
    used: dict[str, float] = {"bench": time.process_time()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
            if str(workdir) in " ".join(argv):
                name = component(argv)
                used[name] = used.get(name, 0.0) + cpu_seconds(int(proc.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # it exited meanwhile
    return used


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, help="a burst: POST them with this many at once")
    parser.add_argument("--rate", type=float, help="open loop: POST them at this many per second")
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
        before = cpu_by_component(workdir)
        result = asyncio.run(measure(kubeconfig, workdir, args, baseline))
        after = cpu_by_component(workdir)
        used = {name: round(after[name] - before.get(name, 0.0), 1) for name in after}
        result["operator_cpu_seconds"] = used.pop("operator run")
        result["other_cpu_seconds"] = dict(sorted(used.items(), key=lambda item: -item[1]))
        result["operator_peak_rss_mib"] = peak_rss_mib(operator.process.pid)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
