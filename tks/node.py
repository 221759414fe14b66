"""One TKS replica: its etcd client, key view, leader election, key server and key broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from teeplane.tasks import cancel_all
from teeplane.tks.broker import KeyBroker
from teeplane.tks.election import LeaderElection
from teeplane.tks.etcd import close, connect
from teeplane.tks.jwks import JwksCache, JwksUnavailableError
from teeplane.tks.kek import KekProvider
from teeplane.tks.keyserver import KeyServer
from teeplane.tks.view import KeyView

log = logging.getLogger("teeplane.tks")


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
        self.jwks = JwksCache(fetch_jwks)
        self.broker = KeyBroker(self.view, kek, self.jwks, audience=config.audience, issuer=config.issuer)
        self._jwks_refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect, load and follow the keys, join the election, and keep RAS's JWKS fresh."""
        await self.client.connect()
        await self.view.start()
        await self.election.start()
        self._jwks_refresher = asyncio.create_task(self._refresh_jwks())

    async def stop(self) -> None:
        """Leave the election (a follower takes over at once) and stop following etcd."""
        if self._jwks_refresher is not None:
            await cancel_all([self._jwks_refresher])
        await self.election.stop()
        await self.view.stop()
        await close(self.client)

    async def _refresh_jwks(self) -> None:
        """Fetch the JWKS off the event loop now and every `max_age / 2`, so releases never wait on RAS."""
        while True:
            try:
                await asyncio.to_thread(self.jwks.refresh)
            except JwksUnavailableError as error:
                log.warning("RAS's JWKS: %s", error.message)
            await asyncio.sleep(self.jwks.max_age / 2)
