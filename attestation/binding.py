"""How evidence binds a verifier's nonce and the TEE's runtime data (its public key).

    report_data = SHA-512(nonce || JCS(runtime_data))

`runtime_data` is a JSON object holding at least `tee_pubkey` (a public JWK); JCS is the RFC 8785
canonical JSON form, so every party computes the same bytes. SHA-512 fills the 64 bytes of TDX
and SEV-SNP report data exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import rfc8785

from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError

REPORT_DATA_SIZE = 64


def canonical_runtime_data(runtime_data: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON bytes of the runtime data."""
    try:
        return rfc8785.dumps(dict(runtime_data))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise EvidenceFormatError(
            Code.RUNTIME_DATA_MALFORMED, f"runtime data cannot be canonicalised: {exc}", where="runtime_data"
        ) from None


def report_data_for(nonce: bytes, runtime_data: Mapping[str, Any]) -> bytes:
    """The 64 bytes of report data that bind `nonce` and `runtime_data`."""
    return hashlib.sha512(nonce + canonical_runtime_data(runtime_data)).digest()


def check_binding(report_data: bytes, nonce: bytes, runtime_data: Mapping[str, Any]) -> None:
    """Refuse evidence whose report data does not bind this nonce and runtime data."""
    expected = report_data_for(nonce, runtime_data)
    if not hmac.compare_digest(report_data, expected):
        raise AppraisalError(
            Code.BINDING_MISMATCH,
            f"report_data {report_data.hex()} != SHA-512(nonce || JCS(runtime_data)) {expected.hex()}",
            where="evidence.report_data",
        )


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, as JOSE and the HTTP APIs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str, what: str) -> bytes:
    """Decode unpadded (or padded) base64url, with a typed error naming `what`."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise EvidenceFormatError(Code.INPUT_UNREADABLE, f"{what} is not base64url", where=what) from None
