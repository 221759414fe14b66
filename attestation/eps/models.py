"""EPS request and response bodies (the HTTP contract; also the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from teeplane.attestation.binding import b64url_decode
from teeplane.attestation.eps.provider import Tee
from teeplane.attestation.errors import EvidenceFormatError

EVIDENCE_PATH = "/v1/evidence"
DISCOVERY_PATH = "/.well-known/teeplane"
#: Nonce sizes a verifier may choose, in bytes.
MIN_NONCE_SIZE = 16
MAX_NONCE_SIZE = 64
_B64URL = r"^[A-Za-z0-9_-]*={0,2}$"


class EvidenceRequest(BaseModel):
    """A verifier's nonce and, optionally, the runtime data the evidence should bind with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nonce: str = Field(
        pattern=_B64URL,
        max_length=88,
        description=f"base64url of {MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes chosen by the verifier",
    )
    runtime_data: dict[str, Any] | None = Field(
        default=None,
        description="JSON object to bind (e.g. `tee_pubkey`, a public JWK); default: the EPS's own key",
    )

    @field_validator("nonce")
    @classmethod
    def _nonce_size(cls, value: str) -> str:
        try:
            size = len(b64url_decode(value, "nonce"))
        except EvidenceFormatError:
            raise ValueError("nonce is not base64url") from None
        if not MIN_NONCE_SIZE <= size <= MAX_NONCE_SIZE:
            raise ValueError(f"nonce must be {MIN_NONCE_SIZE}..{MAX_NONCE_SIZE} bytes, got {size}")
        return value


class EvidenceResponse(BaseModel):
    """Evidence whose report data is SHA-512(nonce || JCS(runtime_data)), and what to check it with."""

    model_config = ConfigDict(frozen=True)

    tee: Tee
    evidence: str = Field(description="base64url TDX quote or SEV-SNP attestation report")
    event_log: str | None = Field(description="base64url CCEL event log, when the TEE has one")
    collateral: str | None = Field(description="base64url DCAP collateral bundle (simulated TEE only)")
    certificates: list[str] = Field(description="base64url DER certificates from the host, VCEK/VLEK first (SEV-SNP)")
    runtime_data: dict[str, Any] = Field(description="the runtime data the report data binds")
    simulated: bool = Field(description="the evidence comes from a simulated TEE")
    baseline_id: str | None = Field(description="the baseline this workload was built from")
    log_proof: dict[str, Any] | None = Field(description="the baseline's transparency-log inclusion proof")
    workload: dict[str, Any] | None = Field(description="the workload identity (namespace, name)")


class Discovery(BaseModel):
    """What `/.well-known/teeplane` says about this EPS."""

    model_config = ConfigDict(frozen=True)

    tee: Tee
    simulated: bool
    baseline_id: str | None
    endpoints: dict[str, str] = Field(description="endpoint name -> path")
