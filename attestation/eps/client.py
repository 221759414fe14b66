"""A typed client for the Evidence Provision Service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from teeplane.remote import ServiceClient, first_error, parse_response


class EpsClient(ServiceClient):
    """An EPS over HTTP. Errors are RemoteError with the service's problem code, or
    `service.unreachable` / `service.bad_response`."""

    service = "EPS"

    def evidence(self, nonce: bytes, runtime_data: Mapping[str, Any] | None = None) -> EvidenceResponse:
        """Fresh evidence binding `nonce` (16..64 bytes) and `runtime_data` (default: the EPS's key)."""
        try:
            request = EvidenceRequest(
                nonce=b64url_encode(nonce), runtime_data=dict(runtime_data) if runtime_data is not None else None
            )
        except ValidationError as exc:
            raise EvidenceFormatError(Code.NONCE_INVALID, first_error(exc), where="nonce") from None
        body = self._json("POST", EVIDENCE_PATH, request.model_dump(mode="json", exclude_none=True))
        return parse_response(EvidenceResponse, body, self.service)

    def discovery(self) -> Discovery:
        """What the EPS says about itself."""
        return parse_response(Discovery, self._json("GET", DISCOVERY_PATH), self.service)
