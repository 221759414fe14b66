"""Test support for TKS clusters: find the leader, and run write and release streams against replicas."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
from processes import Service
from service_files import ServiceFiles

#: The admin token the streams write with (it must be in the replicas' token file), and its header.
ADMIN_TOKEN = "failover-admin"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Options for a replica that is alone and never fails over: a lease long enough that a starved
#: keepalive on a loaded test machine does not cost it the leadership (and a write a 503).
LONE_REPLICA = ["--lease-ttl", "10"]


def leader_of(replicas: list[Service], timeout: float = 10.0) -> Service:
    """The one replica whose /healthz says leader (200), waiting up to `timeout` for one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = []
        for replica in replicas:
            try:
                if httpx.get(replica.url + "/healthz", timeout=1).status_code == 200:
                    leaders.append(replica)
            except httpx.TransportError:
                pass
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.05)
    raise AssertionError("no single leader")


class Streams:
    """Writes (rotations of `failover-key`) through one replica and releases at others, until stopped:
    which writes were acknowledged and when, and every release that failed."""

    def __init__(self, writer_url: str, release_urls: list[str], token: str) -> None:
        self.acknowledged: list[int] = []
        #: (sent, acknowledged) monotonic times of each acknowledged write.
        self.write_times: list[tuple[float, float]] = []
        self.release_failures: list[str] = []
        self.releases = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(writer_url,)),
            threading.Thread(target=self._release, args=(release_urls, token)),
        ]

    def __enter__(self) -> Streams:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _write(self, url: str) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    answer = http.post(url + "/v1/keys/failover-key/rotate", json={}, headers=ADMIN)
                except httpx.TransportError:
                    continue
                if answer.status_code == 200:
                    self.acknowledged.append(answer.json()["versions"][-1]["version"])
                    self.write_times.append((sent, time.monotonic()))
                else:
                    time.sleep(0.02)

    def acknowledged_after(self, moment: float) -> float | None:
        """When the first write sent after `moment` was acknowledged (None: none was yet)."""
        return min((acked for sent, acked in self.write_times if sent > moment), default=None)

    def _release(self, urls: list[str], token: str) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                for url in urls:
                    answer = http.post(
                        url + "/v1/keys/failover-key/release", headers={"Authorization": f"Bearer {token}"}
                    )
                    self.releases += 1
                    if answer.status_code != 200:
                        self.release_failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")


@dataclass(frozen=True)
class Failover:
    """One leader SIGKILL: the time until a new leader acknowledged a write sent after the kill,
    the writes acknowledged and releases made meanwhile, and every release that failed."""

    seconds: float
    acknowledged: list[int]
    releases: int
    release_failures: list[str]


def kill_the_leader(replicas: list[Service], token: str, give_up: float = 10.0) -> Failover:
    """SIGKILL the leader under a write stream through a follower and releases at the followers,
    wait for a new leader to acknowledge a write, then start the killed replica again."""
    leader = leader_of(replicas)
    followers = [r for r in replicas if r is not leader]
    with Streams(followers[0].url, [f.url for f in followers], token) as streams:
        time.sleep(0.3)
        killed_at = time.monotonic()
        leader.kill()
        while time.monotonic() < killed_at + give_up and streams.acknowledged_after(killed_at) is None:
            time.sleep(0.01)
        time.sleep(0.2)
    first = streams.acknowledged_after(killed_at)
    leader.start()
    seconds = first - killed_at if first is not None else float("inf")
    return Failover(seconds, streams.acknowledged, streams.releases, streams.release_failures)


def start_replicas(
    files: ServiceFiles, etcd_endpoints: list[str], ras_url: str, count: int, stack: ExitStack
) -> list[Service]:
    """`count` TKS replicas (tks0, tks1, ...) started and stopped with `stack`, ready."""
    replicas = [
        Service(
            f"tks{i}", files.tks_args(etcd_endpoints, ras_url, "--member-id", f"tks{i}"), files.directory, "/readyz"
        )
        for i in range(count)
    ]
    for replica in replicas:
        replica.start()
        stack.callback(replica.stop)
    return replicas
