"""Trying again while a TEEPlane service is unavailable (not when it refuses)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from teeplane.errors import TeeplaneError
from teeplane.remote import RemoteError

_T = TypeVar("_T")
#: Statuses that say "not now" rather than "no" (service.unreachable is answered as 503).
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


def transient(error: TeeplaneError) -> bool:
    """Worth trying again: a service that did not answer, or answered that it cannot now."""
    return isinstance(error, RemoteError) and error.http_status in TRANSIENT_STATUSES


def retrying(
    action: Callable[[], _T], timeout: float, on_retry: Callable[[TeeplaneError, float], None] | None = None
) -> _T:
    """`action()`, tried again with exponential backoff (0.5 s to 5 s) while it fails transiently,
    for up to `timeout` seconds; then its last error is raised."""
    deadline, delay = time.monotonic() + timeout, 0.5
    while True:
        try:
            return action()
        except TeeplaneError as error:
            if not transient(error) or time.monotonic() + delay > deadline:
                raise
            if on_retry is not None:
                on_retry(error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
