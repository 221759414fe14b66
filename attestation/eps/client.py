"""A typed client for the Evidence Provision Service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.eps.models import (
    DISCOVERY_PATH,
    EVIDENCE_PATH,
    Discovery,
    EvidenceRequest,
    EvidenceResponse,
)
from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.remote import RemoteError, raise_for_problem

_M = TypeVar("_M", EvidenceResponse, Discovery)


class EpsClient:
    """An EPS over HTTP. Errors are RemoteError with the service's problem code, or
    `service.unreachable` / `service.bad_response`.

    `http` replaces the connection (e.g. a `fastapi.testclient.TestClient`); then `base_url`,
    `verify` and `timeout` are its own.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout, verify=verify)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def evidence(self, nonce: bytes, runtime_data: Mapping[str, Any] | None = None) -> EvidenceResponse:
        """Fresh evidence binding `nonce` (16..64 bytes) and `runtime_data` (default: the EPS's key)."""
        try:
            request = EvidenceRequest(
                nonce=b64url_encode(nonce), runtime_data=dict(runtime_data) if runtime_data is not None else None
            )
        except ValidationError as exc:
            raise EvidenceFormatError(Code.NONCE_INVALID, _first_error(exc), where="nonce") from None
        body = self._call("POST", EVIDENCE_PATH, request.model_dump(mode="json", exclude_none=True))
        return _parse(EvidenceResponse, body)

    def discovery(self) -> Discovery:
        """What the EPS says about itself."""
        return _parse(Discovery, self._call("GET", DISCOVERY_PATH))

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise RemoteError("service.unreachable", f"EPS at {self._http.base_url}: {exc}", 503) from None
        raise_for_problem(response)
        try:
            return response.json()
        except ValueError:
            raise RemoteError("service.bad_response", f"{method} {path}: the EPS answered no JSON", 502) from None


def _parse(model: type[_M], body: Any) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise RemoteError("service.bad_response", f"unexpected EPS response: {_first_error(exc)}", 502) from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
