"""The Key Server's writes and the replicas' view, against real etcd."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aetcd
import pytest
from etcd_cluster import EtcdCluster, etcd_cluster

from teeplane.errors import TeeplaneError
from teeplane.tks.envelope import Envelope, open_envelope
from teeplane.tks.etcd import KEYS, connect
from teeplane.tks.kek import FileKek
from teeplane.tks.keyserver import KeyServer
from teeplane.tks.models import CreateKey, KeyKind, ReleasePolicy, RotateKey
from teeplane.tks.view import KeyView

POLICY = ReleasePolicy(workloads=["payments/ledger"], any_baseline=True)
KEK = FileKek(secrets.token_bytes(32))
T = TypeVar("T")


def run(cluster: EtcdCluster, scenario: Callable[[KeyServer, KeyView, aetcd.Client], Awaitable[T]]) -> T:
    """Run `scenario(server, view_of_another_replica, client)` against the cluster."""

    async def main() -> T:
        writer, reader = connect(cluster.endpoints), connect(cluster.endpoints)
        await writer.connect()
        await reader.connect()
        view = KeyView(reader)
        await view.start()
        try:
            return await scenario(KeyServer(writer, KEK), view, writer)
        finally:
            await view.stop()
            await writer.close()
            await reader.close()

    return asyncio.run(main())


def test_create_rotate_policy_delete_reach_another_replicas_view(tmp_path: Path) -> None:
    secret = secrets.token_bytes(100)

    async def scenario(server: KeyServer, view: KeyView, _: aetcd.Client) -> None:
        value = base64.urlsafe_b64encode(secret).decode().rstrip("=")
        meta, revision = await server.create(
            CreateKey(id="ledger-secret", kind=KeyKind.SECRET, value=value, policy=POLICY)
        )
        assert await view.wait_for(revision)
        assert view.metadata["ledger-secret"] == meta
        sealed = Envelope.from_bytes(view.envelopes[("ledger-secret", 1)])
        assert open_envelope(sealed, key_id="ledger-secret", version=1, kek=KEK) == secret

        newer = secrets.token_bytes(32)
        rotated, revision = await server.rotate(
            "ledger-secret", RotateKey(value=base64.urlsafe_b64encode(newer).decode())
        )
        assert rotated.latest == 2
        assert await view.wait_for(revision)
        assert open_envelope(Envelope.from_bytes(view.envelopes[("ledger-secret", 2)]), key_id="ledger-secret",
                             version=2, kek=KEK) == newer  # fmt: skip

        stricter = POLICY.model_copy(update={"require_latest_version": True})
        _, revision = await server.set_policy("ledger-secret", stricter)
        assert await view.wait_for(revision)
        assert view.metadata["ledger-secret"].policy.require_latest_version

        revision = await server.delete("ledger-secret")
        assert await view.wait_for(revision)
        assert "ledger-secret" not in view.metadata and not view.envelopes

    with etcd_cluster(tmp_path) as cluster:
        run(cluster, scenario)


def test_etcd_holds_only_ciphertext(tmp_path: Path) -> None:
    secret = b"correct horse battery staple " * 3

    async def scenario(server: KeyServer, _: KeyView, client: aetcd.Client) -> list[bytes]:
        value = base64.urlsafe_b64encode(secret).decode()
        await server.create(CreateKey(id="db-password", kind=KeyKind.SECRET, value=value, policy=POLICY))
        await server.create(CreateKey(id="data-key", policy=POLICY))
        return [kv.value for kv in await client.get_prefix(KEYS)]

    with etcd_cluster(tmp_path) as cluster:
        stored = run(cluster, scenario)
    assert len(stored) == 4
    assert not any(secret in value or base64.b64encode(secret) in value for value in stored)


def test_conflicting_writes_are_refused_not_merged(tmp_path: Path) -> None:
    async def scenario(server: KeyServer, view: KeyView, _: aetcd.Client) -> None:
        await server.create(CreateKey(id="data-key", policy=POLICY))
        with pytest.raises(TeeplaneError) as exists:
            await server.create(CreateKey(id="data-key", policy=POLICY))
        assert (exists.value.code, exists.value.http_status) == ("tks.key_exists", 409)
        results = await asyncio.gather(*(server.rotate("data-key", RotateKey()) for _ in range(4)))
        assert sorted(meta.latest for meta, _ in results) == [2, 3, 4, 5]  # no two rotations made the same version
        with pytest.raises(TeeplaneError) as missing:
            await server.rotate("nothing", RotateKey())
        assert (missing.value.code, missing.value.http_status) == ("tks.key_not_found", 404)

    with etcd_cluster(tmp_path) as cluster:
        run(cluster, scenario)


def test_view_resumes_after_losing_an_etcd_member(tmp_path: Path) -> None:
    with etcd_cluster(tmp_path, size=3) as cluster:

        async def scenario(server: KeyServer, view: KeyView, _: aetcd.Client) -> None:
            for index in range(12):
                if index == 4:
                    cluster.kill(cluster.members[0])
                _, revision = await server.create(CreateKey(id=f"key-{index}", policy=POLICY))
                assert await view.wait_for(revision, timeout=10.0), index
            assert sorted(view.metadata) == sorted(f"key-{i}" for i in range(12))

        run(cluster, scenario)
