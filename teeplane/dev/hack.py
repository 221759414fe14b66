"""The repository's hack/ scripts the development stack runs: the pinned etcd build and the local
Kubernetes cluster (hack/cluster.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import teeplane
from teeplane.dev.errors import HACK_MISSING, TOOL_FAILED, DevError

HACK_ENV = "TEEPLANE_HACK"
#: Building etcd or Kubernetes from source on a small machine takes many minutes.
BUILD_TIMEOUT = 3600.0
CLUSTER_DOWN_TIMEOUT = 120.0


def hack_dir() -> Path:
    """$TEEPLANE_HACK, or hack/ of the source checkout this (editable) install runs from."""
    named = os.environ.get(HACK_ENV)
    candidate = Path(named) if named else Path(teeplane.__file__).resolve().parent.parent / "hack"
    if not (candidate / "etcd.sh").is_file():
        where = f"{HACK_ENV}={named}" if named else f"the source checkout ({candidate})"
        raise DevError(
            HACK_MISSING,
            f"no hack/etcd.sh in {where}: run from an editable install of the TEEPlane repository, "
            f"or set {HACK_ENV} to its hack/ directory",
        )
    return candidate


def _cache_dir() -> Path:
    named = os.environ.get("TEEPLANE_CACHE")
    if named:
        return Path(named)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "teeplane"


def run_script(hack: Path, script: str, *args: str, env: dict[str, str] | None = None, timeout: float) -> str:
    """Run hack/`script` and return its stdout, or DevError with its stderr's tail."""
    try:
        done = subprocess.run(
            ["bash", str(hack / script), *args], capture_output=True, text=True, timeout=timeout,
            env=os.environ | (env or {}), check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise DevError(TOOL_FAILED, f"hack/{script} {' '.join(args)} took longer than {timeout:.0f}s") from None
    if done.returncode != 0:
        raise DevError(TOOL_FAILED, f"hack/{script} {' '.join(args)} failed:\n{tail(done.stderr)}", where=script)
    return done.stdout


def etcd_binary(hack: Path) -> Path:
    """The pinned etcd (hack/etcd.sh builds it on first use, then prints its cached directory)."""
    return Path(run_script(hack, "etcd.sh", timeout=BUILD_TIMEOUT).strip().splitlines()[-1]) / "etcd"


def kube_binaries_cached() -> bool:
    """Whether the Kubernetes and kwok builds hack/cluster.sh needs are in the cache already."""
    cache = _cache_dir()
    return any(cache.glob("kubernetes-v*/kube-apiserver")) and any(cache.glob("kwok-v*/kwok"))


def cluster(hack: Path, command: str, cluster_dir: Path) -> str:
    """`hack/cluster.sh COMMAND` on the cluster in `cluster_dir`; its stdout."""
    timeout = BUILD_TIMEOUT if command == "up" else CLUSTER_DOWN_TIMEOUT
    return run_script(hack, "cluster.sh", command, env={"TEEPLANE_CLUSTER_DIR": str(cluster_dir)}, timeout=timeout)


def cluster_running(hack: Path, cluster_dir: Path) -> bool:
    """Whether every process of the cluster in `cluster_dir` runs and its API server is ready."""
    env = os.environ | {"TEEPLANE_CLUSTER_DIR": str(cluster_dir)}
    done = subprocess.run(
        ["bash", str(hack / "cluster.sh"), "status"], capture_output=True, env=env, timeout=30, check=False
    )
    return done.returncode == 0


def tail(text: str, lines: int = 30) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-lines:])
