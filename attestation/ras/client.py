"""A typed client for RAS."""

from __future__ import annotations

from typing import Any

import httpx

from teeplane.attestation.ras.models import AttestRequest, AttestResponse, ChallengeResponse
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.errors import InputError
from teeplane.remote import RemoteError, raise_for_problem


class RasClient:
    """RAS over HTTP: challenge, attest, JWKS, and the admin API (with an admin token)."""

    def __init__(
        self,
        base_url: str = "",
        *,
        admin_token: str | None = None,
        verify: bool | str = True,
        http: httpx.Client | None = None,
    ) -> None:
        """`http` may be any httpx.Client (e.g. FastAPI's TestClient) to talk to an in-process app."""
        self._http = http or httpx.Client(base_url=base_url, timeout=30.0, verify=verify)
        if admin_token:
            self._http.headers["Authorization"] = f"Bearer {admin_token}"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise RemoteError("service.unreachable", f"RAS at {self._http.base_url}: {exc}", 503) from None
        raise_for_problem(response)
        return response

    def challenge(self) -> ChallengeResponse:
        """A fresh nonce."""
        return ChallengeResponse.model_validate(self._call("POST", "/v1/challenge").json())

    def attest(self, request: AttestRequest) -> AttestResponse:
        """Submit evidence; the token, or RemoteError with the refusal's code."""
        return AttestResponse.model_validate(self._call("POST", "/v1/attest", request.model_dump(mode="json")).json())

    def jwks(self) -> dict[str, Any]:
        """The token signing keys."""
        body = self._call("GET", "/.well-known/jwks.json").json()
        if not isinstance(body, dict):
            raise InputError("service.bad_response", "JWKS is not a JSON object")
        return body

    def put_reference_values(self, namespace: str, name: str, reference: ReferenceValues) -> None:
        """Register a workload's reference values (admin)."""
        self._call("PUT", f"/v1/reference-values/{namespace}/{name}", reference.model_dump(mode="json"))

    def put_policy(self, namespace: str, name: str, policy: AppraisalPolicy) -> None:
        """Set a workload's appraisal policy (admin)."""
        self._call("PUT", f"/v1/policies/{namespace}/{name}", policy.model_dump(mode="json"))

    def delete_reference_values(self, namespace: str, name: str) -> None:
        """Unregister a workload (admin)."""
        self._call("DELETE", f"/v1/reference-values/{namespace}/{name}")
