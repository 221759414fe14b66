"""What each component of the development stack runs: its command line, URL and health check.
Pure: from the layout, the ports and the binaries to run."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from teeplane.dev.layout import Layout
from teeplane.dev.materials import LOG_ORIGIN

#: `teeplane` run by this interpreter (the console script may not be on PATH).
TEEPLANE = (sys.executable, "-c", "from teeplane.cli import main; main()")
TKS_REPLICAS = ("tks0", "tks1", "tks2")
#: Started in this order, each tier once the one before is healthy; stopped in the reverse order.
TIERS: tuple[tuple[str, ...], ...] = (("etcd", "ras", "bgs"), TKS_REPLICAS, ("operator",))
#: Each port the stack listens on, and the component listening.
PORT_OWNERS = {"etcd": "etcd", "etcd-peer": "etcd", "ras": "ras", "bgs": "bgs", **{t: t for t in TKS_REPLICAS},
               "operator-webhook": "operator", "operator-liveness": "operator"}  # fmt: skip
#: The image the operator renders for the agent and EPS (kwok only pretends to run it).
DEV_IMAGE = "registry.teeplane.local/teeplane@sha256:" + "0" * 64
#: Leader lease of the TKS replicas: short for a quick failover, long enough for a busy laptop.
TKS_LEASE_TTL = "2"


@dataclass(frozen=True)
class Component:
    """One process of the stack: restarted when its command line or `fingerprint` changes."""

    name: str
    argv: tuple[str, ...]
    url: str
    health_url: str
    env: tuple[tuple[str, str], ...] = ()
    #: What else the process depends on (e.g. the kubeconfig it talks to).
    fingerprint: str = ""


def _https(port: int) -> str:
    return f"https://127.0.0.1:{port}"


def services(layout: Layout, ports: dict[str, int], etcd: Path) -> list[Component]:
    """etcd, RAS, BGS and the TKS replicas."""
    etcd_url, peer_url = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd-peer']}"
    tls = ("--tls-cert", str(layout.server_cert), "--tls-key", str(layout.server_key))
    token = ("--admin-token-file", str(layout.admin_token_file))
    ras_url = _https(ports["ras"])
    etcd_component = Component(
        "etcd",
        (str(etcd), "--name", "dev", "--data-dir", str(layout.data_dir("etcd")),
         "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"dev={peer_url}", "--log-level", "warn"),
        etcd_url, etcd_url + "/health",
    )  # fmt: skip
    ras = Component(
        "ras",
        (*TEEPLANE, "ras", "serve", "--state", str(layout.data_dir("ras")), *token,
         "--simulation-root", str(layout.sim_root), "--simulation-collateral", str(layout.sim_collateral),
         "--port", str(ports["ras"]), *tls),
        ras_url, ras_url + "/readyz",
    )  # fmt: skip
    bgs_url = _https(ports["bgs"])
    bgs = Component(
        "bgs",
        (*TEEPLANE, "bgs", "serve", "--state", str(layout.data_dir("bgs")), *token,
         "--signing-key", str(layout.bgs_signing_key), "--log-key", str(layout.bgs_log_private),
         "--origin", LOG_ORIGIN, "--port", str(ports["bgs"]), *tls),
        bgs_url, bgs_url + "/readyz",
    )  # fmt: skip
    replicas = []
    for name in TKS_REPLICAS:
        url = _https(ports[name])
        argv = (*TEEPLANE, "tks", "serve", "--etcd", f"127.0.0.1:{ports['etcd']}", *token,
                "--ras-url", ras_url, "--kek-file", str(layout.kek_file), "--member-id", name,
                "--advertise-url", url, "--lease-ttl", TKS_LEASE_TTL, "--port", str(ports[name]), *tls,
                "--ca-file", str(layout.ca_file))  # fmt: skip
        replicas.append(Component(name, argv, url, url + "/readyz"))
    return [etcd_component, ras, bgs, *replicas]


def operator(layout: Layout, ports: dict[str, int], kubeconfig_digest: str) -> Component:
    """`teeplane operator run` (standalone, with its webhooks) against the local cluster."""
    liveness = f"http://127.0.0.1:{ports['operator-liveness']}/healthz"
    token = str(layout.admin_token_file)
    argv = (*TEEPLANE, "operator", "run", "--ras-url", _https(ports["ras"]), "--ras-token-file", token,
            "--tks-url", ",".join(_https(ports[name]) for name in TKS_REPLICAS), "--tks-token-file", token,
            "--bgs-url", _https(ports["bgs"]), "--baseline-signer-key", str(layout.bgs_signer_public),
            "--baseline-log-key", str(layout.bgs_log_vkey), "--teeplane-image", DEV_IMAGE, "--ca-file",
            str(layout.ca_file),
            "--standalone", "--webhook-port", str(ports["operator-webhook"]), "--liveness", liveness)  # fmt: skip
    return Component(
        "operator", argv, f"https://127.0.0.1:{ports['operator-webhook']}", liveness,
        env=(("KUBECONFIG", str(layout.kubeconfig)),), fingerprint=kubeconfig_digest,
    )  # fmt: skip
