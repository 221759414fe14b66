"""Every replica's in-memory view of the keys: loaded from etcd, kept current by a watch.

Releases are served from this view, so a release never waits on etcd. The view knows the etcd
revision it reflects; `wait_for` lets a replica serve its own acknowledged writes (read your
writes). A broken watch resumes from the next revision; if that revision was compacted away,
the view reloads.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aetcd

from teeplane.tasks import cancel_all
from teeplane.tks.etcd import KEYS, parse_key, retrying
from teeplane.tks.models import KeyMetadata

log = logging.getLogger("teeplane.tks.view")
RESUME_PAUSE = 0.2


@dataclass
class KeyView:
    """Key metadata and sealed envelopes by key id, as of `revision`."""

    client: aetcd.Client
    metadata: dict[str, KeyMetadata] = field(default_factory=dict)
    envelopes: dict[tuple[str, int], bytes] = field(default_factory=dict)
    revision: int = 0
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load everything, then follow changes in the background."""
        await self._load()
        self._task = asyncio.create_task(self._follow(), name="tks-view-watch")

    async def stop(self) -> None:
        """Stop following changes."""
        if self._task is not None:
            await cancel_all([self._task])

    async def wait_for(self, revision: int, timeout: float = 5.0) -> bool:
        """Wait until the view reflects `revision`; False on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.revision >= revision), timeout)
            except TimeoutError:
                return False
        return True

    async def _load(self) -> None:
        result = await retrying(lambda: self.client.get_prefix(KEYS))
        self.metadata.clear()
        self.envelopes.clear()
        for kv in result:
            self._put(kv.key, kv.value)
        await self._advance(result.header.revision)
        self.synced.set()

    async def _follow(self) -> None:
        while True:
            try:
                watch = await self.client.watch_prefix(KEYS, start_revision=self.revision + 1)
                async for event in watch:
                    if event.kind == "PUT":
                        self._put(event.kv.key, event.kv.value)
                    else:
                        self._delete(event.kv.key)
                    await self._advance(event.kv.mod_revision)
            except aetcd.RevisionCompactedError:
                log.warning("watch revision compacted; reloading the key view")
                await self._load()
            except aetcd.ClientError as error:
                log.warning("key view watch interrupted (%s); resuming", type(error).__name__)
                await asyncio.sleep(RESUME_PAUSE)

    async def _advance(self, revision: int) -> None:
        async with self._changed:
            self.revision = max(self.revision, revision)
            self._changed.notify_all()

    def _put(self, key: bytes, value: bytes) -> None:
        parsed = parse_key(key)
        if parsed is None:
            return
        key_id, version = parsed
        if version is None:
            self.metadata[key_id] = KeyMetadata.model_validate_json(value)
        else:
            self.envelopes[(key_id, version)] = value

    def _delete(self, key: bytes) -> None:
        parsed = parse_key(key)
        if parsed is None:
            return
        key_id, version = parsed
        if version is None:
            self.metadata.pop(key_id, None)
        else:
            self.envelopes.pop((key_id, version), None)
