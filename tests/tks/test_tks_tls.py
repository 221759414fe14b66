"""TKS over HTTPS: RAS and two replicas serve TLS under a private CA; admin writes sent to the
follower are forwarded to the leader over HTTPS; `teeplane keys` pins the CA; a client that does
not trust the CA gets nowhere."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from etcd_cluster import etcd_cluster
from processes import Service, run_teeplane, service
from service_files import ServiceFiles

from teeplane.tls import CertificateAuthority, trusting

ADMIN = "tls-admin-token"


def test_replicas_forward_and_serve_over_https(tmp_path: Path) -> None:
    ca = CertificateAuthority.generate("teeplane test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    ca.issue_server(["127.0.0.1", "localhost"]).write(tmp_path / "tls.crt", tmp_path / "tls.key")
    files = ServiceFiles.write(tmp_path, ADMIN)
    ca_file = tmp_path / "ca.pem"
    tls = ["--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key")]

    with etcd_cluster(tmp_path, 1) as etcd, ExitStack() as stack:
        ras = stack.enter_context(service("ras", files.ras_args(*tls), tmp_path, ca_file=ca_file))
        replicas = [
            Service(f"tks{i}", files.tks_args(etcd.endpoints, ras, "--ca-file", str(ca_file), "--member-id", f"tks{i}",
                                              *tls), tmp_path, "/readyz", ca_file=ca_file)
            for i in range(2)
        ]  # fmt: skip
        for replica in replicas:
            replica.start()
            stack.callback(replica.stop)
        with httpx.Client(verify=trusting(ca_file), timeout=5) as https:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                codes = [https.get(r.url + "/healthz").status_code for r in replicas]
                if sorted(codes) == [200, 429]:
                    break
                time.sleep(0.1)
            follower = replicas[codes.index(429)]
            assert https.get(follower.url + "/v1/cluster").json()["leader"]["url"].startswith("https://")

        created = run_teeplane("keys", "--url", follower.url, "--token", ADMIN, "--ca-file", str(ca_file), "create",
                               "tls-key", "--workload", "a/b", "--any-baseline", "--json", cwd=tmp_path)  # fmt: skip
        assert created.returncode == 0, created.stderr + created.stdout
        assert json.loads(created.stdout)["id"] == "tls-key"  # forwarded to the leader over HTTPS

        untrusted = run_teeplane("keys", "--url", follower.url, "--token", ADMIN, "list", cwd=tmp_path)
        assert untrusted.returncode == 2 and "service.unreachable" in untrusted.stderr
        plain = run_teeplane("keys", "--url", follower.url.replace("https", "http"), "--token", ADMIN, "list",
                             cwd=tmp_path)  # fmt: skip
        assert plain.returncode == 2
