"""Errors answered by TEEPlane services, mapped back to typed errors for their clients."""

from __future__ import annotations

from typing import Any

import httpx

from teeplane.errors import TeeplaneError


class RemoteError(TeeplaneError):
    """An error a TEEPlane service answered with (problem+json), or a failure to reach it."""

    def __init__(self, code: str, message: str, status: int, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(code, message)
        self.http_status = status
        self.exit_code = 1 if status in (401, 403) else 2
        self.errors = errors or []


def raise_for_problem(response: httpx.Response) -> None:
    """Raise RemoteError carrying the service's stable code if the response is an error."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = str(body.get("code", f"http.{response.status_code}"))
    detail = str(body.get("detail", response.reason_phrase)).removeprefix(f"{code}: ")
    raise RemoteError(code, detail, response.status_code, body.get("errors"))
