"""TKS leader election against real etcd: agreement, resign, a dead leader, a dead etcd member.

Every scenario samples `is_leader` of all members every few milliseconds and checks that no two
ever lead at once; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from etcd_cluster import EtcdCluster, etcd_cluster

from teeplane.tasks import cancel_all
from teeplane.tks.election import LeaderElection
from teeplane.tks.etcd import close, connect

TTL = 2


class Sampler:
    """Samples how many elections lead, every 5 ms, in the background."""

    def __init__(self, elections: list[LeaderElection]) -> None:
        self.elections = elections
        self.most = 0
        self.samples = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.most = max(self.most, sum(e.is_leader for e in self.elections))
            self.samples += 1
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def until(condition: Callable[[], bool], timeout: float) -> float:
    """Wait until `condition()` holds; the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def start(cluster: EtcdCluster, index: int, changes: list[bool] | None = None) -> LeaderElection:
    """An election for member m<index>, on its own client."""
    client = connect(cluster.endpoints, timeout=1)
    await client.connect()
    election = LeaderElection(
        client, f"m{index}", f"https://tks-{index}:8443", TTL, on_change=None if changes is None else changes.append
    )
    await election.start()
    return election


async def crash(election: LeaderElection) -> None:
    """Simulate SIGKILL: the tasks stop, the client goes, the lease is left to expire."""
    await cancel_all(election._tasks)
    await close(election._client)


def leaders(elections: list[LeaderElection]) -> list[LeaderElection]:
    return [e for e in elections if e.is_leader]


async def shutdown(elections: list[LeaderElection]) -> None:
    for election in elections:
        await election.stop()
        await close(election._client)


def test_first_wins_and_the_others_follow(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> None:
        changes: list[bool] = []
        first = await start(cluster, 0, changes)
        await until(lambda: first.is_leader, 2)
        elections = [first, await start(cluster, 1), await start(cluster, 2)]
        sampler = Sampler(elections)
        await until(lambda: all(e.leader() == ("m0", "https://tks-0:8443") for e in elections), 2)
        await asyncio.sleep(TTL)  # several lease refreshes later, nothing has changed
        assert leaders(elections) == [first]
        assert all(e.leader() == ("m0", "https://tks-0:8443") for e in elections)
        assert await elections[2].members() == [(f"m{i}", f"https://tks-{i}:8443") for i in range(3)]
        assert changes == [True]
        await sampler.close()
        assert sampler.most == 1
        await shutdown(elections)

    with etcd_cluster(tmp_path) as cluster:
        asyncio.run(scenario(cluster))


def test_resign_hands_over_within_a_second(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> float:
        changes: list[bool] = []
        elections = [await start(cluster, 0, changes), await start(cluster, 1), await start(cluster, 2)]
        await until(lambda: elections[0].is_leader and all(e.leader() is not None for e in elections), 2)
        sampler = Sampler(elections)
        resigned = time.monotonic()
        await elections[0].stop()
        await until(lambda: len(leaders(elections[1:])) == 1, 1)
        took = time.monotonic() - resigned
        new = leaders(elections)[0]
        await until(lambda: all(e.leader() == (new.member_id, new.advertise_url) for e in elections[1:]), 1)
        assert await elections[1].members() == [(e.member_id, e.advertise_url) for e in elections[1:]]
        assert changes == [True, False]
        await sampler.close()
        assert sampler.most == 1
        await shutdown(elections)
        return took

    with etcd_cluster(tmp_path) as cluster:
        took = asyncio.run(scenario(cluster))
    print(f"resign takeover: {took:.3f} s")
    assert took < 1


async def crash_takeover(elections: list[LeaderElection]) -> tuple[float, int]:
    """Crash the leader; (seconds until another leads, samples of the overlap check)."""
    old = leaders(elections)[0]
    others = [e for e in elections if e is not old]
    sampler = Sampler(elections)
    crashed = time.monotonic()
    await crash(old)
    await until(lambda: len(leaders(others)) == 1, TTL + 2)
    took = time.monotonic() - crashed
    assert not old.is_leader  # the dead leader's own view lapsed before anyone else won
    new = leaders(others)[0]
    await until(lambda: all(e.leader() == (new.member_id, new.advertise_url) for e in others), 1)
    await sampler.close()
    assert sampler.most == 1, "two members led at once"
    return took, sampler.samples


def test_dead_leader_is_replaced_after_its_lease_expires(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> tuple[float, int]:
        elections = [await start(cluster, i) for i in range(3)]
        await until(lambda: elections[0].is_leader, 2)
        took, samples = await crash_takeover(elections)
        await shutdown([e for e in elections if e is not elections[0]])
        return took, samples

    with etcd_cluster(tmp_path) as cluster:
        took, samples = asyncio.run(scenario(cluster))
    print(f"crash takeover: {took:.3f} s ({samples} samples)")
    assert took < TTL + 1


def test_election_survives_a_killed_etcd_member(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> tuple[float, float]:
        elections = [await start(cluster, i) for i in range(3)]
        await until(lambda: elections[0].is_leader and all(e.leader() is not None for e in elections), 2)
        sampler = Sampler(elections)
        cluster.kill(cluster.members[0])
        await asyncio.sleep(TTL)  # leases are refreshed through the surviving members
        await until(lambda: leaders(elections) == [elections[0]], TTL)
        resigned = time.monotonic()
        await elections[0].stop()
        await until(lambda: len(leaders(elections)) == 1, 2)
        resign_took = time.monotonic() - resigned
        await sampler.close()
        assert sampler.most == 1
        crash_took, _ = await crash_takeover(elections[1:])
        survivor = leaders(elections)[0]
        await shutdown([survivor])
        await close(elections[0]._client)
        return resign_took, crash_took

    with etcd_cluster(tmp_path, size=3) as cluster:
        resign_took, crash_took = asyncio.run(scenario(cluster))
    print(f"with a dead etcd member: resign {resign_took:.3f} s, crash {crash_took:.3f} s")
    assert resign_took < 1.5
    assert crash_took < TTL + 1


def test_leader_cut_off_from_etcd_steps_down_within_the_ttl(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> float:
        changes: list[bool] = []
        election = await start(cluster, 0, changes)
        await until(lambda: election.is_leader, 2)
        cluster.kill(cluster.members[0])
        lost = time.monotonic()
        await until(lambda: not election.is_leader, TTL)
        took = time.monotonic() - lost
        await until(lambda: changes == [True, False], 1)  # the callback follows
        await cancel_all(election._tasks)
        await close(election._client)
        return took

    with etcd_cluster(tmp_path) as cluster:
        took = asyncio.run(scenario(cluster))
    print(f"step down after losing etcd: {took:.3f} s")
    assert took <= TTL


def test_lost_lease_is_replaced_and_the_member_registers_again(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> None:
        changes: list[bool] = []
        election = await start(cluster, 0, changes)
        await until(lambda: election.is_leader, 2)
        old_lease = election._lease_id
        await election._client.revoke_lease(old_lease)  # as if it had expired while cut off
        await until(lambda: changes == [True, False, True], TTL + 1)
        assert election._lease_id != old_lease
        assert await election.members() == [("m0", "https://tks-0:8443")]
        assert election.leader() == ("m0", "https://tks-0:8443")
        await shutdown([election])

    with etcd_cluster(tmp_path) as cluster:
        asyncio.run(scenario(cluster))
