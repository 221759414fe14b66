"""DSSE envelopes (github.com/secure-systems-lab/dsse), signed and verified with securesystemslib.

The envelope is the JSON `{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}` with
standard, canonical base64; signatures cover DSSE's pre-authentication encoding
PAE(payloadType, payload), so neither can be swapped. Signing takes any securesystemslib `Signer`
(a file key, a KMS, Sigstore); verification pins public keys and, like the log's signed notes,
refuses an envelope whose signature by a pinned key does not verify even if another one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from securesystemslib import dsse as sslib_dsse
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import Key, Signature, Signer

from teeplane.baseline.errors import BaselineInputError, BaselineRefusedError, Code
from teeplane.baseline.tlog import b64
from teeplane.remote import first_error

_B64 = r"^[A-Za-z0-9+/]*={0,2}$"
_PRINTABLE = r"^[\x20-\x7e]*$"
MAX_SIGNATURES = 16
MAX_PAYLOAD_B64 = 60_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class EnvelopeSignature(_Model):
    """One signature: the signing key's ID and the base64 signature over PAE(payloadType, payload)."""

    keyid: str = Field(max_length=256, pattern=_PRINTABLE)
    sig: str = Field(min_length=4, max_length=4096, pattern=_B64)


class Envelope(_Model):
    """A DSSE envelope as JSON."""

    payload_type: str = Field(alias="payloadType", min_length=1, max_length=256, pattern=_PRINTABLE)
    payload: str = Field(min_length=4, max_length=MAX_PAYLOAD_B64, pattern=_B64, description="standard base64")
    signatures: list[EnvelopeSignature] = Field(min_length=1, max_length=MAX_SIGNATURES)

    def canonical(self) -> bytes:
        """The envelope as RFC 8785 canonical JSON (how the transparency log stores it)."""
        return rfc8785.dumps(self.model_dump(mode="json"))


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """What a verified envelope establishes: its payload, signed by the listed pinned keys."""

    payload: bytes
    signers: tuple[str, ...]


def parse_envelope(data: Any) -> Envelope:
    """An envelope from decoded JSON, or `dsse.malformed`."""
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise BaselineInputError(Code.DSSE_MALFORMED, f"not a DSSE envelope: {first_error(exc)}") from None


def sign(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> Envelope:
    """An envelope of `payload` signed by each of `signers`."""
    envelope = sslib_dsse.Envelope(payload, payload_type, {})
    for signer in signers:
        envelope.sign(signer)
    return parse_envelope(envelope.to_dict())


def verify(envelope: Envelope, keys: Sequence[Key], payload_type: str) -> VerifiedEnvelope:
    """Check `envelope` carries `payload_type`, a signature by at least one of `keys`, and that every
    signature by one of `keys` verifies; return the payload."""
    if envelope.payload_type != payload_type:
        raise BaselineRefusedError(
            Code.DSSE_PAYLOAD_TYPE, f"payloadType {envelope.payload_type!r}, expected {payload_type!r}"
        )
    payload = b64.decode(envelope.payload, Code.DSSE_MALFORMED, "the payload")
    signatures: dict[str, Signature] = {}
    for number, item in enumerate(envelope.signatures, 1):
        raw = b64.decode(item.sig, Code.DSSE_MALFORMED, f"signature {number}")
        if item.keyid in signatures:
            raise BaselineInputError(Code.DSSE_MALFORMED, f"two signatures by key {item.keyid!r}")
        signatures[item.keyid] = Signature(item.keyid, raw.hex())
    pae = sslib_dsse.Envelope(payload, payload_type, signatures).pae()
    pinned = {key.keyid: key for key in keys}
    signed_by = [keyid for keyid in signatures if keyid in pinned]
    if not signed_by:
        raise BaselineRefusedError(Code.DSSE_UNTRUSTED_SIGNER, "no signature by a pinned signing key")
    for keyid in signed_by:
        try:
            pinned[keyid].verify_signature(signatures[keyid], pae)
        except UnverifiedSignatureError:
            raise BaselineRefusedError(
                Code.DSSE_SIGNATURE_INVALID, f"the signature by key {keyid} does not verify", where=f"keyid {keyid}"
            ) from None
    return VerifiedEnvelope(payload, tuple(signed_by))
