"""How evidence binds a verifier's nonce and the TEE's runtime data (its public key).

TEEPlane's own binding (`teeplane`):

    report_data = SHA-512(nonce || JCS(runtime_data))

`runtime_data` is a JSON object holding at least `tee_pubkey` (a public JWK); JCS is the RFC 8785
canonical JSON form, so every party computes the same bytes. SHA-512 fills the 64 bytes of TDX
and SEV-SNP report data exactly.

The Confidential Containers KBS binding (`kbs`), as its attestation agent computes it:

    report_data = SHA-384(JSON({"nonce": <nonce text>, "tee-pubkey": <JWK>})) || 16 zero bytes

where JSON is serde_json's compact form with sorted keys, which for these ASCII members is JCS.
The nonce is carried inside the runtime data as the text the challenge gave, and must be it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

import rfc8785

from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError

REPORT_DATA_SIZE = 64
Binding = Literal["teeplane", "kbs"]
#: The runtime-data member that holds the TEE's public JWK, per binding.
TEE_KEY_MEMBER: dict[str, str] = {"teeplane": "tee_pubkey", "kbs": "tee-pubkey"}
RULES: dict[str, str] = {
    "teeplane": "report_data = SHA-512(nonce || JCS(runtime_data))",
    "kbs": "report_data = SHA-384(JCS(runtime_data)) || 0^16, runtime_data.nonce = nonce",
}


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


def kbs_report_data_for(runtime_data: Mapping[str, Any]) -> bytes:
    """The 64 bytes of report data a KBS client binds `runtime_data` ({nonce, tee-pubkey}) with."""
    digest = hashlib.sha384(canonical_runtime_data(runtime_data)).digest()
    return digest + bytes(REPORT_DATA_SIZE - len(digest))


def check_binding(
    report_data: bytes,
    nonce: bytes,
    runtime_data: Mapping[str, Any],
    binding: Binding = "teeplane",
    *,
    nonce_text: str = "",
) -> None:
    """Refuse evidence whose report data does not bind this nonce and runtime data.

    For the `kbs` binding the nonce is checked as `runtime_data.nonce == nonce_text`, the text
    the challenge handed out, and the report data binds the runtime data that carries it.
    """
    if binding == "kbs":
        if runtime_data.get("nonce") != nonce_text:
            raise AppraisalError(
                Code.BINDING_MISMATCH, "runtime_data.nonce is not the challenge's nonce", where="runtime_data.nonce"
            )
        expected = kbs_report_data_for(runtime_data)
    else:
        expected = report_data_for(nonce, runtime_data)
    if not hmac.compare_digest(report_data, expected):
        raise AppraisalError(
            Code.BINDING_MISMATCH,
            f"report_data {report_data.hex()} does not bind the runtime data ({RULES[binding]}: {expected.hex()})",
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
