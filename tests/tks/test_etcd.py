"""The TKS etcd client against real etcd: several members behind one client, and failover."""

from __future__ import annotations

import asyncio
from pathlib import Path

from etcd_cluster import EtcdCluster, etcd_cluster

from teeplane.tks.etcd import LEADER, connect, key_prefix, meta_key, parse_key, retrying, version_key


def test_layout_round_trips() -> None:
    assert parse_key(meta_key("db-key")) == ("db-key", None)
    assert parse_key(version_key("db-key", 12)) == ("db-key", 12)
    assert version_key("db-key", 12).startswith(key_prefix("db-key"))
    assert parse_key(LEADER) is None
    assert parse_key(key_prefix("db-key") + b"other") is None


def test_create_if_absent_is_atomic(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> tuple[bool, bool, bytes]:
        client = connect(cluster.endpoints, timeout=2)
        await client.connect()
        txn = client.transactions
        absent = [txn.create(LEADER) == 0]
        first, _ = await client.transaction(compare=absent, success=[txn.put(LEADER, b"a")], failure=[])
        second, _ = await client.transaction(compare=absent, success=[txn.put(LEADER, b"b")], failure=[])
        value = (await client.get(LEADER)).value
        await client.close()
        return first, second, value

    with etcd_cluster(tmp_path) as cluster:
        assert asyncio.run(scenario(cluster)) == (True, False, b"a")


def test_losing_a_member_is_invisible_with_retries(tmp_path: Path) -> None:
    async def scenario(cluster: EtcdCluster) -> list[bytes]:
        client = connect(cluster.endpoints, timeout=1)
        await client.connect()
        written = []
        for i in range(40):
            if i == 10:
                cluster.kill(cluster.members[0])
            value = str(i).encode()
            await retrying(lambda value=value: client.put(b"/teeplane/tks/test", value))
            written.append((await retrying(lambda: client.get(b"/teeplane/tks/test"))).value)
        await client.close()
        return written

    with etcd_cluster(tmp_path, size=3) as cluster:
        assert asyncio.run(scenario(cluster)) == [str(i).encode() for i in range(40)]
