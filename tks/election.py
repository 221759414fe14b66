"""Leader election among TKS members over etcd.

Each member registers `MEMBERS/<id>` (JSON {"id", "url"}) under its own lease and campaigns by
creating `LEADER` = its id under the same lease, if absent. The lease is refreshed every ttl/3;
when the holder dies its lease expires, etcd deletes both keys and the others campaign again. A
watch on `LEADER` wakes the campaign at once; a short poll backs it up when a watch stream breaks
with a failed etcd member.

Safety: `is_leader` is True only while the lease is surely alive: until the send time of the last
answered refresh plus the lease TTL (etcd counts the TTL from when it receives the refresh, so it
expires later). A member cut off from etcd therefore stops leading before anyone else can win.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aetcd

from teeplane.tasks import cancel_all
from teeplane.tks.etcd import LEADER, MEMBERS, retrying

log = logging.getLogger(__name__)

#: Failures of one etcd call that the loops ride out (they try again on their next round).
_TRANSIENT = (aetcd.ClientError, asyncio.TimeoutError)


class LeaderElection:
    """One member's part in the TKS leader election (start it, then read `is_leader`).

    `on_change(is_leader)` is called, and `changed` set, whenever this member starts or stops
    leading. `poll_interval` bounds how long a follower takes to notice a vacant `LEADER` key when
    its watch misses the deletion (default ttl/4).
    """

    def __init__(
        self,
        client: aetcd.Client,
        member_id: str,
        advertise_url: str,
        ttl: int = 2,
        *,
        on_change: Callable[[bool], None] | None = None,
        poll_interval: float | None = None,
    ) -> None:
        if ttl < 1:
            raise ValueError("the lease TTL must be at least one second")
        self.member_id = member_id
        self.advertise_url = advertise_url
        self.ttl = ttl
        self.on_change = on_change
        self.changed = asyncio.Event()
        self._client = client
        self._poll = poll_interval if poll_interval is not None else ttl / 4
        self._granted_ttl = ttl
        self._lease_id: int | None = None
        self._valid_until = 0.0  # monotonic time until which our lease is surely alive
        self._leading = False
        self._leader: tuple[str, str] | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_leader(self) -> bool:
        """Whether this member leads: it holds `LEADER` and its lease cannot have expired yet."""
        return self._leading and time.monotonic() < self._valid_until

    def leader(self) -> tuple[str, str] | None:
        """The current leader as (member id, URL), as last seen in etcd; None while there is none."""
        return self._leader

    async def members(self) -> list[tuple[str, str]]:
        """Every registered (live) member as (member id, URL), ordered by id."""
        found = await retrying(lambda: self._client.get_prefix(MEMBERS))
        out = []
        for kv in found:
            record = json.loads(kv.value)
            out.append((str(record["id"]), str(record["url"])))
        return sorted(out)

    async def start(self) -> None:
        """Register this member and start keeping its lease alive and campaigning."""
        if self._tasks:
            raise RuntimeError("the election is already running")
        await self._new_lease()
        self._tasks = [
            asyncio.create_task(self._keep_alive(), name=f"election-keepalive-{self.member_id}"),
            asyncio.create_task(self._campaign(), name=f"election-campaign-{self.member_id}"),
            asyncio.create_task(self._watch(), name=f"election-watch-{self.member_id}"),
        ]

    async def stop(self) -> None:
        """Stop and resign: revoke the lease, so `LEADER` and the member key vanish at once."""
        tasks, self._tasks = self._tasks, []
        await cancel_all(tasks)
        self._set_leading(False)
        lease_id, self._lease_id = self._lease_id, None
        if lease_id is not None:
            try:
                await asyncio.wait_for(retrying(lambda: self._client.revoke_lease(lease_id)), self.ttl)
            except _TRANSIENT as error:  # the lease expires by itself within its TTL
                log.warning("could not revoke the lease of %s: %s", self.member_id, error)

    # -- internals -----------------------------------------------------------------------------

    def _lease_alive(self) -> bool:
        return self._lease_id is not None and time.monotonic() < self._valid_until

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.info("%s %s leading", self.member_id, "is now" if leading else "stopped")
        self.changed.set()
        if self.on_change is not None:
            try:
                self.on_change(leading)
            except Exception:
                log.exception("the leadership callback of %s failed", self.member_id)

    async def _new_lease(self) -> None:
        """Grant a fresh lease and register this member under it."""
        sent = time.monotonic()
        lease: Any = await retrying(lambda: self._client.lease(self.ttl))
        self._lease_id, self._granted_ttl = int(lease.id), int(lease.ttl)
        self._valid_until = sent + self._granted_ttl
        record = json.dumps({"id": self.member_id, "url": self.advertise_url}).encode()
        key = MEMBERS + self.member_id.encode()
        await retrying(lambda: self._client.put(key, record, lease=lease.id))

    async def _keep_alive(self) -> None:
        """Refresh the lease every ttl/3; step down once it may have expired; replace a lost lease."""
        interval = self._granted_ttl / 3
        while True:
            sent = time.monotonic()
            try:
                reply = await asyncio.wait_for(self._client.refresh_lease(self._lease_id), interval)
                if reply is not None and reply.TTL > 0:
                    self._valid_until = sent + int(reply.TTL)
                else:  # etcd no longer knows the lease: it expired while we were cut off
                    log.warning("the lease of %s expired; registering again", self.member_id)
                    self._set_leading(False)
                    self._valid_until = 0.0
                    await asyncio.wait_for(self._new_lease(), self._granted_ttl)
                    self._wake.set()
            except Exception as error:  # etcd unreachable, a member failed: try again next round
                log.debug("refreshing the lease of %s failed: %r", self.member_id, error)
            if not self._lease_alive():
                self._set_leading(False)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - sent)))

    async def _campaign(self) -> None:
        """Try to take `LEADER` whenever woken (by the watch) or every poll interval."""
        while True:
            self._wake.clear()
            try:
                await self._campaign_once()
            except Exception as error:
                log.debug("campaign of %s failed: %r", self.member_id, error)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _campaign_once(self) -> None:
        """One round: create `LEADER` if absent, else read who holds it; update our view."""
        lease_id = self._lease_id
        txn = self._client.transactions
        holder: tuple[str, int] | None
        if lease_id is not None and self._lease_alive():
            won, responses = await retrying(
                lambda: self._client.transaction(
                    compare=[txn.create(LEADER) == 0],
                    success=[txn.put(LEADER, self.member_id.encode(), lease_id)],
                    failure=[txn.get(LEADER)],
                )
            )
            if won:
                holder = (self.member_id, lease_id)
            elif responses and responses[0]:
                kv = responses[0][0][1]
                holder = (kv.value.decode(), int(kv.lease))
            else:  # vanished between compare and get: campaign again right away
                holder = None
                self._wake.set()
        else:  # our lease may be gone: do not campaign with it, only watch who leads
            current = await retrying(lambda: self._client.get(LEADER))
            holder = None if current is None else (current.value.decode(), int(current.lease))
        # Leading only if etcd holds LEADER under *this* lease (a repeated txn that lost its first
        # answer reads back our own key) and the lease is still surely alive.
        self._set_leading(holder == (self.member_id, lease_id) and self._lease_alive())
        await self._remember_leader(None if holder is None else holder[0])

    async def _remember_leader(self, member_id: str | None) -> None:
        """Cache (id, URL) of the leader, reading the URL from its member key when it changes."""
        if member_id is None:
            self._leader = None
            return
        if self._leader is not None and self._leader[0] == member_id:
            return
        found = await retrying(lambda: self._client.get(MEMBERS + member_id.encode()))
        url = str(json.loads(found.value)["url"]) if found is not None else ""
        self._leader = (member_id, url)

    async def _watch(self) -> None:
        """Wake the campaign on every change of `LEADER`; re-create the watch when it breaks."""
        while True:
            try:
                watch = await self._client.watch(LEADER)
                try:
                    self._wake.set()  # changes may have been missed while the watch was down
                    async for _event in watch:
                        self._wake.set()
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(watch.cancel(), 1.0)
            except Exception as error:
                log.debug("the watch of %s broke: %r", self.member_id, error)
            await asyncio.sleep(self._poll)
