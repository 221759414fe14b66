"""A typed client for RAS."""

from __future__ import annotations

from typing import Any

from teeplane.attestation.ras.models import AttestRequest, AttestResponse, ChallengeResponse
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.errors import InputError
from teeplane.remote import ServiceClient, parse_response


class RasClient(ServiceClient):
    """RAS over HTTP: challenge, attest, JWKS, and the admin API (with an admin token)."""

    service = "RAS"

    def challenge(self) -> ChallengeResponse:
        """A fresh nonce."""
        return parse_response(ChallengeResponse, self._json("POST", "/v1/challenge"), self.service)

    def attest(self, request: AttestRequest) -> AttestResponse:
        """Submit evidence; the token, or RemoteError with the refusal's code."""
        body = self._json("POST", "/v1/attest", request.model_dump(mode="json"))
        return parse_response(AttestResponse, body, self.service)

    def jwks(self) -> dict[str, Any]:
        """The token signing keys."""
        body = self._json("GET", "/.well-known/jwks.json")
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

    def delete_policy(self, namespace: str, name: str) -> None:
        """Remove a workload's appraisal policy (admin)."""
        self._call("DELETE", f"/v1/policies/{namespace}/{name}")
