"""Admin authentication shared by the services: bearer tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Header

from teeplane.errors import TeeplaneError


class AdminAuthError(TeeplaneError):
    """Missing or wrong admin credentials."""

    http_status = 401


def hash_admin_token(token: str) -> str:
    """How admin tokens are stored: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def admin_dependency(token_hashes: Iterable[str]) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency that admits only a bearer token whose hash is listed."""
    hashes = tuple(token_hashes)

    async def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        presented = hash_admin_token(token) if scheme.lower() == "bearer" and token else ""
        if not any(hmac.compare_digest(presented, h) for h in hashes):
            raise AdminAuthError("auth.admin_required", "a valid admin bearer token is required")

    return require_admin
