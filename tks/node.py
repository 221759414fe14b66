"""One TKS replica: its etcd client, key view, leader election, key server and key broker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from teeplane.tks.broker import KeyBroker
from teeplane.tks.election import LeaderElection
from teeplane.tks.etcd import connect
from teeplane.tks.jwks import JwksCache
from teeplane.tks.kek import KekProvider
from teeplane.tks.keyserver import KeyServer
from teeplane.tks.view import KeyView


@dataclass(frozen=True)
class NodeConfig:
    """How a replica joins the cluster and whom it trusts."""

    etcd_endpoints: Sequence[str]
    member_id: str
    advertise_url: str
    issuer: str
    audience: str
    lease_ttl: int = 1


class TksNode:
    """A replica. Every replica serves releases from its view; only the leader writes."""

    def __init__(self, config: NodeConfig, kek: KekProvider, fetch_jwks: Callable[[], Mapping[str, Any]]) -> None:
        self.config = config
        # a short RPC deadline: a call caught on a member that just died is retried elsewhere at once
        self.client = connect(config.etcd_endpoints, timeout=1)
        self.view = KeyView(self.client)
        self.election = LeaderElection(self.client, config.member_id, config.advertise_url, ttl=config.lease_ttl)
        self.keys = KeyServer(self.client, kek)
        self.broker = KeyBroker(self.view, kek, JwksCache(fetch_jwks), audience=config.audience, issuer=config.issuer)

    async def start(self) -> None:
        """Connect, load and follow the keys, then join the election."""
        await self.client.connect()
        await self.view.start()
        await self.election.start()

    async def stop(self) -> None:
        """Leave the election (a follower takes over at once) and stop following etcd."""
        await self.election.stop()
        await self.view.stop()
        await self.client.close()
