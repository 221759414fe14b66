"""etcd access for TKS: the client over several members, and the key layout.

Layout under `/teeplane/tks/`:

    keys/<id>/meta           KeyMetadata JSON (no key material)
    keys/<id>/v/<00000001>   the sealed envelope of version 1 (ciphertext only)
    leader                   the leader's member id, under the leader's lease
    members/<member id>      {"id", "url"} of the member, under its lease
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aetcd

_T = TypeVar("_T")
#: Errors after which an operation is tried again: a member died or an election is under way.
RETRYABLE = (aetcd.ConnectionTimeoutError, aetcd.ConnectionFailedError, aetcd.InternalError)

PREFIX = b"/teeplane/tks/"
KEYS = PREFIX + b"keys/"
LEADER = PREFIX + b"leader"
MEMBERS = PREFIX + b"members/"


def connect(endpoints: Sequence[str], timeout: int = 5) -> aetcd.Client:
    """A client for the etcd members `endpoints` (host:port each).

    gRPC takes several addresses as one `ipv4:` target; round-robin load balancing keeps using the
    members that answer, so losing one member is invisible to callers.
    """
    if not endpoints:
        raise ValueError("at least one etcd endpoint is needed")
    addresses = ",".join(endpoints)
    head, _, last_port = addresses.rpartition(":")
    return aetcd.Client(
        host=f"ipv4:{head}",
        port=int(last_port),
        timeout=timeout,
        options={"grpc.lb_policy_name": "round_robin", "grpc.enable_retries": 1},
    )


def meta_key(key_id: str) -> bytes:
    """Where a key's metadata lives."""
    return KEYS + key_id.encode() + b"/meta"


def version_key(key_id: str, version: int) -> bytes:
    """Where a key version's envelope lives."""
    return KEYS + key_id.encode() + b"/v/" + f"{version:08d}".encode()


def key_prefix(key_id: str) -> bytes:
    """Every etcd key of one TKS key."""
    return KEYS + key_id.encode() + b"/"


def parse_key(etcd_key: bytes) -> tuple[str, int | None] | None:
    """(key id, version or None for metadata) of an etcd key under KEYS, or None if not one."""
    if not etcd_key.startswith(KEYS):
        return None
    parts = etcd_key[len(KEYS) :].split(b"/")
    if len(parts) == 2 and parts[1] == b"meta":
        return parts[0].decode(), None
    if len(parts) == 3 and parts[1] == b"v" and parts[2].isdigit():
        return parts[0].decode(), int(parts[2])
    return None


async def retrying(operation: Callable[[], Awaitable[_T]], attempts: int = 5, pause: float = 0.1) -> _T:
    """Run an etcd operation, again after a member failure or election (a bounded number of times).

    Only for operations that are safe to repeat: puts of whole values, and transactions whose
    comparisons make a repeat fail instead of applying twice.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except RETRYABLE:
            if attempt == attempts:
                raise
            await asyncio.sleep(pause * attempt)
    raise AssertionError("unreachable")


async def close(client: aetcd.Client, timeout: float = 2.0) -> None:
    """Close a client, giving up after `timeout`: aetcd's close can wait forever on a watch stream
    whose request queue nobody drains any more (a member died under it), and a replica that is
    shutting down must not hang on that."""
    try:
        await asyncio.wait_for(client.close(), timeout)
    except (TimeoutError, aetcd.ClientError) as error:
        logging.getLogger("teeplane.tks").warning("the etcd client did not close cleanly: %r", error)
