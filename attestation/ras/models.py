"""RAS request and response bodies (the HTTP contract; also the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Kubernetes object names: DNS-1123 labels / subdomains.
_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_B64URL = r"^[A-Za-z0-9_-]*={0,2}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkloadIdentity(_Model):
    """The Kubernetes workload (and pod) the evidence comes from."""

    namespace: str = Field(pattern=_NAME, max_length=63)
    name: str = Field(pattern=_NAME, max_length=253)
    pod: str | None = Field(default=None, pattern=_NAME, max_length=253)

    @property
    def key(self) -> str:
        """`namespace/name`, the key reference values and policies are stored under."""
        return f"{self.namespace}/{self.name}"


class ChallengeResponse(_Model):
    """A single-use nonce for one attestation."""

    nonce: str = Field(description="base64url; bind it into report_data")
    expires_at: datetime


class AttestRequest(_Model):
    """Evidence for a nonce from RAS, with the runtime data its report_data binds."""

    nonce: str = Field(pattern=_B64URL, max_length=128)
    tee: Literal["tdx", "snp"]
    evidence: str = Field(pattern=_B64URL, max_length=64 * 1024, description="base64url quote or SNP report")
    event_log: str | None = Field(default=None, pattern=_B64URL, max_length=2 * 1024 * 1024)
    vcek: str | None = Field(default=None, pattern=_B64URL, max_length=16 * 1024, description="SNP: VCEK/VLEK DER")
    runtime_data: dict[str, Any] = Field(
        description="JSON object with the TEE's public JWK: `tee_pubkey` (teeplane) or `tee-pubkey` and `nonce` (kbs)"
    )
    binding: Literal["teeplane", "kbs"] = Field(
        default="teeplane",
        description="teeplane: report_data = SHA-512(nonce || JCS(runtime_data)); "
        "kbs (Confidential Containers KBS protocol): report_data = SHA-384(JCS(runtime_data)) || 0^16",
    )
    workload: WorkloadIdentity


class AttestResponse(_Model):
    """The attestation-result token."""

    token: str
    expires_at: datetime


class DocumentList(_Model):
    """The workloads that have a stored document."""

    workloads: list[str]
