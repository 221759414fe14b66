"""RAS's token signing keys (its JWKS) as the Key Broker caches them.

The cache fetches through an injected callable (the HTTP client lives elsewhere), refreshes
when its copy is `max_age` old, and refetches once when a token names a key it does not hold
(RAS rotated), but at most once per `min_refetch` seconds, so tokens with made-up key IDs
cannot make it hammer RAS. It fails closed: a JWKS it cannot refresh past `max_age` is not used.
A service keeps it fresh from a background task (`refresh`, every `max_age / 2`), so a release
finds the fetch on its own path only when that task could not reach RAS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from teeplane.attestation.errors import Code
from teeplane.attestation.token import TokenError, verify_token
from teeplane.errors import RefusedError

DEFAULT_MAX_AGE = 300.0
DEFAULT_MIN_REFETCH = 10.0


class JwksUnavailableError(RefusedError):
    """No current JWKS: tokens cannot be checked, so nothing is released (503: retry later)."""

    http_status = 503

    def __init__(self, message: str) -> None:
        super().__init__("jwks.unavailable", message, where="jwks")


class JwksCache:
    """A thread-safe cache of RAS's JWKS that verifies attestation-result tokens against it.

    `fetch` returns the JWKS document; any exception it raises becomes JwksUnavailableError. Fetches
    run under the cache's lock, so concurrent callers share one fetch; `fetch` must time out.
    `clock` (monotonic seconds) times the cache, not tokens.
    """

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        min_refetch: float = DEFAULT_MIN_REFETCH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= min_refetch <= max_age:
            raise ValueError("need 0 <= min_refetch <= max_age")
        self._fetch = fetch
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks: Mapping[str, Any] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None

    def verify(self, token: str, *, audience: str, issuer: str, now: datetime) -> dict[str, Any]:
        """The token's claims (`verify_token`), refetching the JWKS once if it names an unknown key.

        Raises TokenError for a refused token, JwksUnavailableError when no current JWKS can be had.
        """
        seen = self._current()
        try:
            return verify_token(token, seen, audience=audience, issuer=issuer, now=now)
        except TokenError as error:
            if error.code != Code.TOKEN_UNKNOWN_KID:
                raise
            fresh = self._after_miss(seen)
            if fresh is None:
                raise
        return verify_token(token, fresh, audience=audience, issuer=issuer, now=now)

    @property
    def max_age(self) -> float:
        """How old a JWKS may get before it is no longer used."""
        return self._max_age

    def refresh(self) -> None:
        """Fetch now (unless within `min_refetch` of the last attempt); JwksUnavailableError on failure."""
        with self._lock:
            self._refresh()

    def _current(self) -> Mapping[str, Any]:
        """The cached JWKS, refreshed first when it is `max_age` old."""
        with self._lock:
            if self._jwks is not None and self._clock() - self._fetched_at < self._max_age:
                return self._jwks
            fresh = self._refresh()
            if fresh is None:
                raise JwksUnavailableError("no current JWKS: RAS did not answer the last fetch; retry later")
            return fresh

    def _after_miss(self, seen: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """A JWKS newer than `seen`, fetched now unless rate-limited (None) or another caller already did."""
        with self._lock:
            if self._jwks is not seen:
                return self._jwks
            return self._refresh()

    def _refresh(self) -> Mapping[str, Any] | None:
        """Fetch (the lock held): the new JWKS, or None within `min_refetch` of the last attempt."""
        started = self._clock()
        if self._attempted_at is not None and started - self._attempted_at < self._min_refetch:
            return None
        self._attempted_at = started
        try:
            jwks = self._fetch()
        except Exception as error:
            raise JwksUnavailableError(f"the JWKS could not be fetched ({type(error).__name__})") from error
        if not (isinstance(jwks, Mapping) and isinstance(jwks.get("keys"), list)):
            raise JwksUnavailableError("the fetched JWKS has no keys list")
        self._jwks, self._fetched_at = jwks, started
        return jwks
