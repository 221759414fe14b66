"""The Key Server's writes: create, rotate, set policy, delete, each one etcd transaction.

Key material is sealed (envelope under the KEK) before it leaves the process; etcd only ever holds
ciphertext. Every write is a transaction guarded by a comparison (the key is absent, or its
metadata is unchanged since read), so concurrent writers cannot interleave and a repeated write
cannot apply twice. A write returns only after etcd committed it, with the revision to wait for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import aetcd

from teeplane.attestation.binding import b64url_decode
from teeplane.errors import InputError, TeeplaneError
from teeplane.tks.envelope import seal
from teeplane.tks.etcd import key_prefix, meta_key, retrying, version_key
from teeplane.tks.kek import KekProvider
from teeplane.tks.models import CreateKey, KeyKind, KeyMetadata, KeyVersion, ReleasePolicy, RotateKey

AES256_BYTES = 32
MAX_CONFLICT_RETRIES = 5


class KeyExistsError(TeeplaneError):
    """A key with this id exists already."""

    http_status = 409


class KeyNotFoundError(TeeplaneError):
    """No key with this id."""

    http_status = 404


class KeyServer:
    """Writes keys to etcd (the cluster's leader runs these)."""

    def __init__(
        self, client: aetcd.Client, kek: KekProvider, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.client = client
        self.kek = kek
        self.clock = clock

    async def create(self, request: CreateKey) -> tuple[KeyMetadata, int]:
        """Create a key at version 1; (its metadata, the committed revision)."""
        now = self.clock()
        meta = KeyMetadata(
            id=request.id,
            kind=request.kind,
            created_at=now,
            versions=[KeyVersion(version=1, created_at=now)],
            policy=request.policy,
        )
        sealed = seal(_material(request.kind, request.value), key_id=request.id, version=1, kek=self.kek).to_bytes()
        txn = self.client.transactions
        committed, _ = await retrying(
            lambda: self.client.transaction(
                compare=[txn.create(meta_key(request.id)) == 0],
                success=[
                    txn.put(meta_key(request.id), meta.model_dump_json().encode()),
                    txn.put(version_key(request.id, 1), sealed),
                ],
                failure=[],
            )
        )  # fmt: skip
        if not committed:
            raise KeyExistsError("tks.key_exists", f"key {request.id!r} exists already", where="id")
        return meta, await self._revision(request.id)

    async def rotate(self, key_id: str, request: RotateKey) -> tuple[KeyMetadata, int]:
        """Add the next version (generated for aes-256 keys, given for secrets)."""

        def change(meta: KeyMetadata) -> tuple[KeyMetadata, list[tuple[bytes, bytes]]]:
            if (meta.kind is KeyKind.SECRET) != (request.value is not None):
                raise InputError("request.invalid", "a secret rotates to a new `value`; an aes-256 key takes none")
            version = meta.latest + 1
            sealed = seal(_material(meta.kind, request.value), key_id=key_id, version=version, kek=self.kek)
            updated = meta.model_copy(
                update={"versions": [*meta.versions, KeyVersion(version=version, created_at=self.clock())]}
            )
            return updated, [(version_key(key_id, version), sealed.to_bytes())]  # fmt: skip

        return await self._update(key_id, change)

    async def set_policy(self, key_id: str, policy: ReleasePolicy) -> tuple[KeyMetadata, int]:
        """Replace a key's release policy."""
        return await self._update(key_id, lambda meta: (meta.model_copy(update={"policy": policy}), []))

    async def delete(self, key_id: str) -> int:
        """Delete a key and every version; the committed revision."""
        txn = self.client.transactions
        prefix = key_prefix(key_id)
        committed, _ = await retrying(
            lambda: self.client.transaction(
                compare=[txn.create(meta_key(key_id)) > 0],
                success=[txn.delete(prefix, range_end=aetcd.utils.prefix_range_end(prefix))],
                failure=[],
            )
        )
        if not committed:
            raise KeyNotFoundError("tks.key_not_found", f"no key {key_id!r}", where="id")
        return await self._revision(key_id)

    async def _update(
        self, key_id: str, change: Callable[[KeyMetadata], tuple[KeyMetadata, list[tuple[bytes, bytes]]]]
    ) -> tuple[KeyMetadata, int]:
        """Read-modify-write of the metadata, retried while another writer got there first."""
        txn = self.client.transactions
        for _ in range(MAX_CONFLICT_RETRIES):
            current = await retrying(lambda: self.client.get(meta_key(key_id)))
            if current is None:
                raise KeyNotFoundError("tks.key_not_found", f"no key {key_id!r}", where="id")
            updated, extra = change(KeyMetadata.model_validate_json(current.value))
            puts = [txn.put(meta_key(key_id), updated.model_dump_json().encode())]
            puts += [txn.put(key, value) for key, value in extra]
            unchanged = [txn.mod(meta_key(key_id)) == current.mod_revision]
            committed, _ = await retrying(partial(self.client.transaction, compare=unchanged, success=puts, failure=[]))
            if committed:
                return updated, await self._revision(key_id)
        raise TeeplaneError("tks.write_conflict", f"key {key_id!r} kept changing; try again", where="id")

    async def _revision(self, key_id: str) -> int:
        """The store's revision now: at least that of the write just committed."""
        current = await retrying(lambda: self.client.get_prefix(key_prefix(key_id), keys_only=True))
        return int(current.header.revision)


def _material(kind: KeyKind, value: str | None) -> bytes:
    if kind is KeyKind.AES256:
        return secrets.token_bytes(AES256_BYTES)
    assert value is not None
    return b64url_decode(value, "value")
