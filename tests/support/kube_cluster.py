"""A real Kubernetes control plane for tests: hack/cluster.sh (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with fake TDX/SNP Nodes) in a state directory of
its own, stopped at the end; or, where TEEPLANE_KUBECONFIG names a kubeconfig, that existing cluster
(for machines that cannot build the pinned binaries, which needs Go).

    with kube_cluster(tmp_path) as kubeconfig:
        subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes"], check=True)

or, as a pytest fixture, import `kubeconfig` into a conftest.py or test module:

    from kube_cluster import kubeconfig  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster.sh"
EXISTING_CLUSTER_ENV = "TEEPLANE_KUBECONFIG"
# The first `up` on a machine builds Kubernetes from source (tens of minutes on 2 CPUs); later
# ones take seconds.
UP_TIMEOUT = 3600.0
DOWN_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    """hack/cluster.sh could not bring the cluster up, or TEEPLANE_KUBECONFIG names no file."""


def _cluster_script(command: str, state_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TEEPLANE_CLUSTER_DIR": str(state_dir)}
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def existing_kubeconfig() -> Path | None:
    """The kubeconfig that TEEPLANE_KUBECONFIG names, if it is set."""
    named = os.environ.get(EXISTING_CLUSTER_ENV)
    if not named:
        return None
    path = Path(named).expanduser()
    if not path.is_file():
        raise ClusterError(f"{EXISTING_CLUSTER_ENV}={named} is not a file")
    return path


@contextmanager
def kube_cluster(state_dir: Path | None = None) -> Iterator[Path]:
    """Yield the admin kubeconfig of a running cluster.

    With TEEPLANE_KUBECONFIG set, that cluster is used as it is and left running. Otherwise
    hack/cluster.sh starts one in `state_dir` (a new temporary directory when None, deleted at the
    end; a given `state_dir` is kept, with a log per component under logs/) and stops every process
    of it at the end, whatever happened in between.
    """
    existing = existing_kubeconfig()
    if existing is not None:
        yield existing
        return
    own_dir = state_dir is None
    state = Path(tempfile.mkdtemp(prefix="teeplane-cluster-")) if state_dir is None else state_dir
    try:
        try:
            up = _cluster_script("up", state, UP_TIMEOUT)
        except subprocess.TimeoutExpired as timeout:
            raise ClusterError(f"hack/cluster.sh up took longer than {UP_TIMEOUT:.0f}s") from timeout
        if up.returncode != 0:
            hint = "" if shutil.which("go") else f" (no Go here to build Kubernetes: set {EXISTING_CLUSTER_ENV})"
            raise ClusterError(f"hack/cluster.sh up failed{hint}:\n{up.stderr[-4000:]}")
        yield Path(up.stdout.strip().splitlines()[-1])
    finally:
        down = _cluster_script("down", state, DOWN_TIMEOUT)
        if own_dir and down.returncode == 0:
            shutil.rmtree(state, ignore_errors=True)
        if down.returncode != 0:
            raise ClusterError(f"hack/cluster.sh down failed (state kept in {state}):\n{down.stderr[-4000:]}")


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The admin kubeconfig of one cluster shared by the whole test session."""
    try:
        with kube_cluster(tmp_path_factory.mktemp("kube-cluster")) as path:
            yield path
    except ClusterError as error:
        pytest.fail(str(error))
