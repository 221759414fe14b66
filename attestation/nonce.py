"""Challenges: nonces any replica can check without shared state, used at most once.

A nonce is `version (1) || expiry (8, big-endian Unix seconds) || random (16) || HMAC-SHA256 (32)`
over the first 25 bytes, with a key every replica shares. Any replica can check the MAC and the
expiry; single use is enforced by claiming the random part in a replay cache that the replicas
share until the nonce expires (the RAS store).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from teeplane.attestation.errors import AppraisalError, Code

NONCE_VERSION = 1
NONCE_SIZE = 1 + 8 + 16 + 32
DEFAULT_NONCE_LIFETIME = timedelta(minutes=2)
_PREFIX = struct.Struct(">BQ")


class ReplayCache(Protocol):
    """Records used nonces until they expire."""

    def claim(self, nonce_id: bytes, expires_at: datetime) -> bool:
        """Record `nonce_id`; True if this is its first use, False if it was used before."""
        ...


@dataclass(frozen=True, slots=True)
class Challenge:
    """A nonce and when it expires."""

    nonce: bytes
    expires_at: datetime


class NonceIssuer:
    """Issues and checks MAC'd, expiring nonces under a shared key."""

    def __init__(self, key: bytes, lifetime: timedelta = DEFAULT_NONCE_LIFETIME) -> None:
        if len(key) < 32:
            raise ValueError("the nonce key must be at least 32 bytes")
        self._key = key
        self.lifetime = lifetime

    def issue(self, now: datetime) -> Challenge:
        """A fresh nonce valid for `lifetime` from `now`."""
        expires = int((now + self.lifetime).timestamp())
        body = _PREFIX.pack(NONCE_VERSION, expires) + secrets.token_bytes(16)
        return Challenge(body + self._mac(body), datetime.fromtimestamp(expires, UTC))

    def check(self, nonce: bytes, now: datetime, replay_cache: ReplayCache) -> datetime:
        """Refuse a nonce that is forged, expired or used before; consume it; return its expiry."""
        if len(nonce) != NONCE_SIZE or nonce[0] != NONCE_VERSION:
            raise AppraisalError(Code.NONCE_INVALID, "the nonce was not issued by this service", where="nonce")
        body, mac = nonce[:25], nonce[25:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise AppraisalError(Code.NONCE_INVALID, "the nonce was not issued by this service", where="nonce")
        expires_at = datetime.fromtimestamp(_PREFIX.unpack_from(body)[1], UTC)
        if now > expires_at:
            raise AppraisalError(
                Code.NONCE_EXPIRED, f"the nonce expired at {expires_at:%Y-%m-%dT%H:%M:%SZ}", where="nonce"
            )
        if not replay_cache.claim(body[9:25], expires_at):
            raise AppraisalError(Code.NONCE_REUSED, "the nonce was already used", where="nonce")
        return expires_at

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()
