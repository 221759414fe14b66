"""Real etcd servers for tests: the pinned binaries from hack/etcd.sh, on loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from processes import free_ports

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


def etcd_binaries() -> Path:
    """The directory of the pinned etcd and etcdctl (built on first use, then cached)."""
    built = subprocess.run(
        ["bash", str(REPO / "hack" / "etcd.sh")], capture_output=True, text=True, timeout=900, check=False
    )
    if built.returncode != 0:
        pytest.fail(f"hack/etcd.sh failed:\n{built.stderr}")
    return Path(built.stdout.strip().splitlines()[-1])


@dataclass
class Member:
    """One etcd member: its name, URLs, data directory and process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """A running etcd cluster; `endpoints` are the members' client addresses (host:port)."""

    binaries: Path
    members: list[Member]
    logs: Path
    initial_cluster: str = field(default="")

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{m.client_port}" for m in self.members if m.process and m.process.poll() is None]

    def start(self, member: Member, state: str) -> None:
        """Start (or restart) one member."""
        log = (self.logs / f"{member.name}.log").open("ab")
        flags = {
            "--name": member.name,
            "--data-dir": str(member.data_dir),
            "--listen-client-urls": member.client_url,
            "--advertise-client-urls": member.client_url,
            "--listen-peer-urls": member.peer_url,
            "--initial-advertise-peer-urls": member.peer_url,
            "--initial-cluster": self.initial_cluster,
            "--initial-cluster-state": state,
            "--initial-cluster-token": "teeplane-test",
            "--heartbeat-interval": "50",
            "--election-timeout": "500",
            "--log-level": "warn",
        }
        member.process = subprocess.Popen(
            [str(self.binaries / "etcd"), *(part for pair in flags.items() for part in pair)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self, member: Member) -> None:
        """SIGKILL one member."""
        assert member.process is not None
        member.process.send_signal(signal.SIGKILL)
        member.process.wait(10)

    def wait_healthy(self) -> None:
        """Wait until every running member reports health."""
        deadline = time.monotonic() + START_TIMEOUT
        endpoints = ",".join(self.endpoints)
        while time.monotonic() < deadline:
            check = subprocess.run(
                [str(self.binaries / "etcdctl"), "--endpoints", endpoints, "endpoint", "health"],
                capture_output=True,
                text=True,
                check=False,
                env=os.environ | {"ETCDCTL_API": "3"},
            )
            if check.returncode == 0:
                return
            time.sleep(0.2)
        pytest.fail(f"etcd did not become healthy: {check.stderr}")

    def stop(self) -> None:
        """Stop every member."""
        for member in self.members:
            if member.process and member.process.poll() is None:
                member.process.terminate()
                try:
                    member.process.wait(10)
                except subprocess.TimeoutExpired:
                    member.process.kill()


@contextmanager
def etcd_cluster(workdir: Path, size: int = 1) -> Iterator[EtcdCluster]:
    """A fresh etcd cluster of `size` members under `workdir`, stopped at the end."""
    ports = free_ports(2 * size)
    members = [Member(f"etcd{i}", ports[2 * i], ports[2 * i + 1], workdir / f"etcd{i}.data") for i in range(size)]
    cluster = EtcdCluster(etcd_binaries(), members, workdir)
    cluster.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
    try:
        for member in members:
            cluster.start(member, "new")
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()
