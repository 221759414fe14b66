"""The ConfidentialWorkload operator under test, with everything it talks to, all real processes on
loopback: the cluster (see kube_cluster.py) with the chart's CRDs and RBAC applied as they are, etcd,
RAS, TKS, a BGS speaking `GET /v1/baselines/{id}` (a small local server serving signed and logged
baselines, and forged ones), and
`teeplane operator run` under the chart's service account.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from etcd_cluster import etcd_cluster
from processes import TEEPLANE, Service, free_port, service
from securesystemslib.signer import CryptoSigner
from tks_cluster import LONE_REPLICA

from teeplane.baseline import dsse
from teeplane.baseline.document import PAYLOAD_TYPE, BaselineMetadata, baseline_id, build_document
from teeplane.baseline.dsse import Envelope
from teeplane.baseline.errors import Code
from teeplane.baseline.example import initdata as example_initdata
from teeplane.baseline.keys import public_pem
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.service.models import BaselineRecord
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.baseline.tlog.storage import TileLog
from teeplane.tks.client import TksClient
from teeplane.tks.models import CreateKey, ReleasePolicy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "teeplane"
ADMIN_TOKEN = "operator-test-admin-token"
TEEPLANE_IMAGE = "registry.example/teeplane@sha256:" + "ab" * 32
OPERATOR_NAMESPACE = "teeplane-system"
WEBHOOK_CONFIGURATION = "teeplane-operator.teeplane.io"
BGS_ORIGIN = "bgs.test/baselines"
#: The example build's initdata, which examples/confidentialworkload.yaml carries too.
INITDATA = example_initdata().decode()
#: Makes a namespace for one test (optionally labelled) and returns its name.
NamespaceFactory = Callable[..., str]
MEASUREMENTS = ExpectedMeasurements(tee="tdx", mrtd="11" * 48, mrconfigid=hashlib.sha384(INITDATA.encode()).hexdigest())


class Kubectl:
    """The machine's kubectl against one cluster."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
        return done

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, parsed; None if it is not found."""
        done = self("get", *args, "-o", "json", check=False)
        if done.returncode != 0:
            if "NotFound" in done.stderr:
                return None
            raise AssertionError(f"kubectl get {' '.join(args)} failed:\n{done.stderr}")
        return json.loads(done.stdout)

    def apply(self, manifest: dict[str, Any] | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self("apply", "-f", "-", *args, stdin=text, check=check)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll `probe` until it returns something truthy; that value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def install_chart(kubectl: Kubectl) -> None:
    """Apply the chart's CRDs, then its operator RBAC (plain YAML), exactly as they are in the repository."""
    kubectl("apply", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    kubectl("apply", "-f", str(CHART / "templates" / "operator-rbac.yaml"))


def service_account_kubeconfig(kubectl: Kubectl, path: Path) -> Path:
    """A kubeconfig for the chart's service account: the operator runs with exactly the chart's RBAC."""
    token = kubectl("create", "token", "teeplane-operator", "-n", OPERATOR_NAMESPACE, "--duration", "6h").stdout.strip()
    admin = yaml.safe_load(kubectl.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "teeplane-operator", "user": {"token": token}}],
        "contexts": [
            {"name": "operator", "context": {"cluster": admin["clusters"][0]["name"], "user": "teeplane-operator"}}
        ],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


#: How `Bgs.publish` can forge a record, for the operator to refuse.
Forgery = Literal["other-signer", "tampered", "wrong-proof"]


class Bgs:
    """A BGS serving genuinely signed and logged baselines at `GET /v1/baselines/{id or name@version}`
    (404 otherwise), each with a c2sp.org/tlog-proof under the log's current checkpoint, optionally
    slowly (to stop the operator mid-reconcile). Unlike the real BGS it also serves name@version (as
    the CRD allows), and it can serve forged records (see `publish`).

    The operator pins `signer_key_file` and `log_key`."""

    def __init__(self, workdir: Path) -> None:
        self.records: dict[str, tuple[Envelope, int]] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[str] = []
        self._signer = CryptoSigner.generate_ed25519()
        self._other_signer = CryptoSigner.generate_ed25519()
        log_signer = LogSigner(BGS_ORIGIN, Ed25519PrivateKey.generate())
        self.log_key = log_signer.verifier.vkey
        self._log = TileLog.create(workdir / "bgs-log", log_signer)
        self._lock = threading.Lock()
        self.signer_key_file = workdir / "bgs-signer.pub"
        self.signer_key_file.write_bytes(public_pem(self._signer))
        bgs = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                reference = unquote(self.path.removeprefix("/v1/baselines/"))
                bgs.requests.append(reference)
                time.sleep(bgs.delays.get(reference, 0.0))
                record = bgs.record(reference)
                body = json.dumps(record or {"code": "baseline.not_found", "detail": f"no baseline {reference}"})
                try:
                    self.send_response(200 if record else 404)
                    self.send_header("Content-Type", "application/json" if record else "application/problem+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the operator was killed while it waited

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def publish(
        self, name: str, version: str, measurements: ExpectedMeasurements = MEASUREMENTS, forgery: Forgery | None = None
    ) -> str:
        """Sign and log a baseline; its ID, also served under name@version. A `forgery` is signed by a
        key the operator does not pin, has a payload changed after signing, or comes with the inclusion
        proof of another entry."""
        document = build_document(measurements, BaselineMetadata(name=name, version=version))
        signer = self._other_signer if forgery == "other-signer" else self._signer
        envelope = dsse.sign(document.payload, PAYLOAD_TYPE, [signer])
        if forgery == "tampered":
            payload = document.payload.replace(measurements.mrtd.encode(), b"ee" * 48)
            envelope = envelope.model_copy(update={"payload": b64.encode(payload)})
        with self._lock:
            (index,) = self._log.append([envelope.canonical()])
            if forgery == "wrong-proof":
                (index,) = self._log.append([b"another entry"])
            self.records[document.id] = self.records[f"{name}@{version}"] = (envelope, index)
        return document.id

    def record(self, reference: str) -> dict[str, Any] | None:
        """What the BGS answers for `reference`, its proof under the current checkpoint; None if unknown."""
        with self._lock:
            if reference not in self.records:
                return None
            envelope, index = self.records[reference]
            proof = self._log.tlog_proof(index).decode()
        record = BaselineRecord(id=baseline_id(b64.decode(envelope.payload, Code.DSSE_MALFORMED, "payload")),
                                index=index, envelope=envelope, proof=proof)  # fmt: skip
        return record.model_dump(mode="json")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._log.close()


@dataclass
class Services:
    """RAS, TKS and the BGS, and the admin token file RAS and TKS accept; RAS can be stopped and started."""

    ras_process: Service
    tks: str
    bgs: Bgs
    token_file: Path

    @property
    def ras(self) -> str:
        return self.ras_process.url

    def create_key(self, key_id: str, workloads: list[str], baselines: list[str], **policy: Any) -> None:
        with self._tks() as client:
            client.create(
                CreateKey(id=key_id, policy=ReleasePolicy(workloads=workloads, baselines=baselines, **policy))
            )

    def set_key_policy(self, key_id: str, workloads: list[str], baselines: list[str]) -> None:
        with self._tks() as client:
            client.set_policy(key_id, ReleasePolicy(workloads=workloads, baselines=baselines))

    @contextmanager
    def _tks(self) -> Iterator[TksClient]:
        client = TksClient(self.tks, admin_token=ADMIN_TOKEN)
        try:
            yield client
        finally:
            client.close()

    def reference_values(self, namespace: str, name: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.get(f"{self.ras}/v1/reference-values/{namespace}/{name}", headers=headers, timeout=10)


@contextmanager
def services(workdir: Path) -> Iterator[Services]:
    """etcd, RAS, TKS and the BGS, until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = workdir / "admin-tokens"
    tokens.write_text(ADMIN_TOKEN + "\n")
    (workdir / "kek").write_bytes(os.urandom(32))
    bgs = Bgs(workdir)
    with ExitStack() as stack:
        stack.callback(bgs.close)
        etcd = stack.enter_context(etcd_cluster(workdir, 1))
        ras = Service(
            "ras", ["ras", "serve", "--state", str(workdir / "ras"), "--admin-token-file", str(tokens)], workdir
        )
        stack.callback(ras.stop)
        ras.start()
        tks_args = ["tks", "serve", "--etcd", ",".join(etcd.endpoints), "--ras-url", ras.url, "--admin-token-file",
                    str(tokens), "--kek-file", str(workdir / "kek"), *LONE_REPLICA]  # fmt: skip
        tks = stack.enter_context(service("tks", tks_args, workdir, "/readyz"))
        yield Services(ras, tks, bgs, tokens)


@dataclass
class Operator:
    """One `teeplane operator run` process; start, stop (SIGTERM) and kill (SIGKILL) it at will."""

    kubeconfig: Path
    services: Services
    workdir: Path
    name: str = "operator"
    priority: int = 100
    webhooks: bool = True
    extra: list[str] = field(default_factory=list)
    webhook_port: int = field(default_factory=free_port)
    liveness_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def args(self) -> list[str]:
        s = self.services
        return ["operator", "run", "--ras-url", s.ras, "--ras-token-file", str(s.token_file), "--tks-url", s.tks,
                "--tks-token-file", str(s.token_file), "--bgs-url", s.bgs.url,
                "--baseline-signer-key", str(s.bgs.signer_key_file), "--baseline-log-key", s.bgs.log_key,
                "--teeplane-image", TEEPLANE_IMAGE,
                "--priority", str(self.priority), "--webhook-port", str(self.webhook_port),
                "--liveness", f"http://127.0.0.1:{self.liveness_port}/healthz",
                "--unregister-attempts", "3", "--unregister-delay", "0.5",
                *([] if self.webhooks else ["--no-webhooks"]), *self.extra]  # fmt: skip

    def start(self, kubectl: Kubectl | None = None) -> None:
        """Start it and wait until it is live (and, with webhooks, until its webhooks are registered)."""
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [*TEEPLANE, *self.args()], cwd=self.workdir, stdout=output, stderr=subprocess.STDOUT,
                env=os.environ | {"PYTHONSAFEPATH": "1", "KUBECONFIG": str(self.kubeconfig)},
            )  # fmt: skip
        wait_for(f"{self.name} to be live", self._live, timeout=60)
        if self.webhooks and kubectl is not None:
            wait_for(f"{self.name}'s webhooks", lambda: self._registered(kubectl), timeout=30)

    def _live(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def _registered(self, kubectl: Kubectl) -> bool:
        url = f"https://127.0.0.1:{self.webhook_port}/"
        configs = [kubectl.get(kind, WEBHOOK_CONFIGURATION) for kind in
                   ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")]  # fmt: skip
        return all(c and c.get("webhooks") and all(w["clientConfig"]["url"].startswith(url) for w in c["webhooks"])
                   for c in configs)  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit (Kopf unregisters its webhooks and leaves the peering)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.log.read_text()[-4000:]}") from None

    def kill(self) -> None:
        """SIGKILL: a crash, in the middle of whatever it was doing."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


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


def _events(kubectl: Kubectl, ns: str, name: str) -> list[dict[str, Any]]:
    listed = kubectl.get("events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
    items: list[dict[str, Any]] = listed["items"]
    return items


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    """The (type, reason) of each Event about `name`."""
    return [(e["type"], e["reason"]) for e in _events(kubectl, ns, name)]


def event_messages(kubectl: Kubectl, ns: str, name: str) -> list[str]:
    """The message of each Event about `name`."""
    return [e.get("message", "") for e in _events(kubectl, ns, name)]
