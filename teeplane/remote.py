"""Errors answered by TEEPlane services, mapped back to typed errors for their clients."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from teeplane.errors import TeeplaneError
from teeplane.tls import Verify

_M = TypeVar("_M", bound=BaseModel)


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


class ServiceClient:
    """The HTTP plumbing of TEEPlane's typed clients: one connection pool, an optional admin
    bearer token, and every error answered as RemoteError (`service.unreachable` when the service
    does not answer at all).

    `base_url` may list replicas, comma-separated (like etcd's endpoints): a call that cannot
    connect to one goes to the next (only then: a request that reached a replica is never sent
    twice), and later calls stay with the replica that answered.

    `http` replaces the connection (e.g. a `fastapi.testclient.TestClient`); then `base_url`,
    `verify` and `timeout` are its own.
    """

    #: The service's name in error messages.
    service = "service"

    def __init__(
        self,
        base_url: str = "",
        *,
        admin_token: str | None = None,
        verify: Verify = True,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._endpoints = [url.strip() for url in base_url.split(",") if url.strip()] or [base_url]
        self._http = http or httpx.Client(base_url=self._endpoints[0], timeout=timeout, verify=verify)
        if admin_token:
            self._http.headers["Authorization"] = f"Bearer {admin_token}"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(
        self, method: str, path: str, json: Any = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        response = self._send(method, path, json, headers)
        raise_for_problem(response)
        return response

    def _send(self, method: str, path: str, json: Any, headers: dict[str, str] | None) -> httpx.Response:
        """The response, from the first endpoint that can be connected to."""
        tries = len(self._endpoints)
        while True:
            try:
                return self._http.request(method, path, json=json, headers=headers)
            except httpx.ConnectError as exc:
                tries -= 1
                if tries == 0:
                    raise self._unreachable(exc) from None
                self._endpoints.append(self._endpoints.pop(0))
                self._http.base_url = httpx.URL(self._endpoints[0])
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.HTTPError) -> RemoteError:
        return RemoteError("service.unreachable", f"{self.service} at {self._http.base_url}: {exc}", 503)

    def _json(self, method: str, path: str, json: Any = None) -> Any:
        """The JSON body of a successful call, or `service.bad_response`."""
        try:
            return self._call(method, path, json).json()
        except ValueError:
            message = f"{method} {path}: {self.service} answered no JSON"
            raise RemoteError("service.bad_response", message, 502) from None


def parse_response(model: type[_M], body: Any, service: str) -> _M:
    """A service's answer as `model`, or RemoteError `service.bad_response`."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RemoteError("service.bad_response", f"unexpected {service} response: {first_error(exc)}", 502) from None


def first_error(exc: ValidationError) -> str:
    """The first validation error as `path: message`."""
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
