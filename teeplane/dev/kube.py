"""The local Kubernetes of the development stack: hack/cluster.sh (kube-apiserver, controllers and
kwok nodes) under STATE/cluster, with the chart's CRDs applied for the operator."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from teeplane.dev.errors import KUBE_UNAVAILABLE, TOOL_FAILED, DevError
from teeplane.dev.hack import cluster, kube_binaries_cached, tail
from teeplane.dev.layout import Layout

KUBECTL_TIMEOUT = 120.0


def wanted(kube: bool | None, hack: Path) -> bool:
    """Whether to run Kubernetes: never (False), when its cached builds and kubectl are there (None),
    or always (True: building it if need be; DevError when hack/cluster.sh or kubectl is missing)."""
    if kube is False:
        return False
    tools = (hack / "cluster.sh").is_file() and shutil.which("kubectl") is not None
    if kube is None:
        return tools and kube_binaries_cached()
    if not tools:
        raise DevError(KUBE_UNAVAILABLE, f"Kubernetes needs {hack / 'cluster.sh'} and kubectl on PATH")
    return True


def start(hack: Path, layout: Layout, progress: Callable[[str], None]) -> Path:
    """Start (or check) the cluster and install the CRDs; the admin kubeconfig."""
    progress("Kubernetes: hack/cluster.sh up (starts it unless it runs)")
    kubeconfig = Path(cluster(hack, "up", layout.cluster_dir).strip().splitlines()[-1])
    crds = hack.parent / "charts" / "teeplane" / "crds"
    progress(f"applying the CRDs in {crds}")
    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
    progress(f"Kubernetes ready (KUBECONFIG={kubeconfig})")
    return kubeconfig


def digest(kubeconfig: Path) -> str:
    """What identifies the cluster a kubeconfig reaches (it changes when the cluster restarts on new ports)."""
    return hashlib.sha256(kubeconfig.read_bytes()).hexdigest()


def _kubectl(kubeconfig: Path, *args: str) -> None:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=KUBECTL_TIMEOUT, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise DevError(TOOL_FAILED, f"kubectl {' '.join(args)} failed:\n{tail(done.stderr)}", where="kubectl")
