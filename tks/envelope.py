"""Envelope encryption of key material at rest (pure: no I/O beyond the KEK provider it is given).

Each key version gets a fresh 256-bit data-encryption key (DEK). The material is encrypted under the
DEK with AES-256-GCM, and the DEK is wrapped by a KEK; both are bound to the same AAD, which names
the key id and version, so an envelope moved to another key or version does not open. The stored
form is compact JSON with base64url (unpadded) fields.

Errors: `tks.envelope_invalid` (an `InputError` when the bytes are malformed, a `RefusedError` when
an envelope does not authenticate for this key id, version and KEK), `tks.secret_too_large`, and
`tks.key_ref_invalid` for a key id or version that cannot name a key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeplane.attestation.binding import b64url_encode
from teeplane.errors import InputError, RefusedError
from teeplane.tks.kek import KekProvider, KekUnwrapError

ENVELOPE_INVALID = "tks.envelope_invalid"
SECRET_TOO_LARGE = "tks.secret_too_large"
KEY_REF_INVALID = "tks.key_ref_invalid"

ALG = "A256GCM"
DEK_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_PLAINTEXT_BYTES = 512 * 1024
#: Bound on a serialized envelope: base64url of the largest ciphertext plus the other fields.
MAX_ENVELOPE_BYTES = 1024 * 1024
MAX_WRAPPED_DEK_BYTES = 1024
MAX_KEK_ID_CHARS = 256
MAX_KEY_ID_BYTES = 1024

_FIELDS = frozenset({"alg", "kek_id", "wrapped_dek", "nonce", "ciphertext"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AAD_PREFIX = b"teeplane-tks\0"


def _malformed(message: str, where: str | None = None) -> InputError:
    return InputError(ENVELOPE_INVALID, message, where=where)


def _refused(message: str, where: str) -> RefusedError:
    return RefusedError(ENVELOPE_INVALID, message, where=where)


def _b64decode(text: str, field: str) -> bytes:
    """Strict unpadded base64url: one encoding per value."""
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise _malformed(f"{field} is not unpadded base64url", field)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _malformed(f"{field} is not unpadded base64url", field) from None
    if b64url_encode(data) != text:
        raise _malformed(f"{field} is not canonical base64url", field)
    return data


def aad_for(key_id: str, version: int) -> bytes:
    """The AAD binding an envelope to one key version: `teeplane-tks\\0` key_id `\\0` version."""
    if not isinstance(key_id, str) or not key_id or "\0" in key_id or len(key_id.encode()) > MAX_KEY_ID_BYTES:
        raise InputError(KEY_REF_INVALID, "a key id is a non-empty string without NUL, at most 1 KiB", where="key_id")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(KEY_REF_INVALID, "a key version is an integer >= 1", where="version")
    return _AAD_PREFIX + key_id.encode("utf-8") + b"\0" + str(version).encode("ascii")


@dataclass(frozen=True, repr=False)
class Envelope:
    """One key version's material at rest: the wrapped DEK and the material encrypted under it."""

    kek_id: str
    wrapped_dek: bytes
    nonce: bytes
    ciphertext: bytes
    alg: str = ALG

    def __post_init__(self) -> None:
        if self.alg != ALG:
            raise _malformed(f"alg must be {ALG}", "alg")
        if not 0 < len(self.kek_id) <= MAX_KEK_ID_CHARS or _CONTROL.search(self.kek_id):
            raise _malformed(f"kek_id is 1..{MAX_KEK_ID_CHARS} characters without control characters", "kek_id")
        if not 0 < len(self.wrapped_dek) <= MAX_WRAPPED_DEK_BYTES:
            raise _malformed(f"wrapped_dek is 1..{MAX_WRAPPED_DEK_BYTES} bytes", "wrapped_dek")
        if len(self.nonce) != NONCE_BYTES:
            raise _malformed(f"nonce is {NONCE_BYTES} bytes", "nonce")
        if not TAG_BYTES <= len(self.ciphertext) <= MAX_PLAINTEXT_BYTES + TAG_BYTES:
            raise _malformed(f"ciphertext is {TAG_BYTES}..{MAX_PLAINTEXT_BYTES + TAG_BYTES} bytes", "ciphertext")

    def to_bytes(self) -> bytes:
        """Compact JSON, keys sorted, binary fields in unpadded base64url."""
        fields = {
            "alg": self.alg,
            "ciphertext": b64url_encode(self.ciphertext),
            "kek_id": self.kek_id,
            "nonce": b64url_encode(self.nonce),
            "wrapped_dek": b64url_encode(self.wrapped_dek),
        }
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse `to_bytes` output; anything else raises `InputError` (`tks.envelope_invalid`)."""
        if len(data) > MAX_ENVELOPE_BYTES:
            raise _malformed(f"an envelope is at most {MAX_ENVELOPE_BYTES} bytes, got {len(data)}")
        try:
            fields = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _malformed("an envelope is a UTF-8 JSON object") from None
        if not isinstance(fields, dict):
            raise _malformed("an envelope is a JSON object")
        if set(fields) != _FIELDS:
            missing, unknown = sorted(_FIELDS - set(fields)), sorted(set(fields) - _FIELDS)
            raise _malformed(f"envelope fields: missing {missing}, unknown {unknown}")
        for name, value in fields.items():
            if not isinstance(value, str):
                raise _malformed(f"{name} is not a string", name)
        return cls(
            alg=fields["alg"],
            kek_id=fields["kek_id"],
            wrapped_dek=_b64decode(fields["wrapped_dek"], "wrapped_dek"),
            nonce=_b64decode(fields["nonce"], "nonce"),
            ciphertext=_b64decode(fields["ciphertext"], "ciphertext"),
        )

    def __repr__(self) -> str:
        return (
            f"Envelope(alg={self.alg!r}, kek_id={self.kek_id!r}, wrapped_dek=<{len(self.wrapped_dek)} bytes>, "
            f"nonce=<{len(self.nonce)} bytes>, ciphertext=<{len(self.ciphertext)} bytes>)"
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def seal(plaintext: bytes, *, key_id: str, version: int, kek: KekProvider) -> Envelope:
    """Encrypt one key version's material under a fresh DEK, wrapped by `kek`."""
    bound = aad_for(key_id, version)
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise InputError(SECRET_TOO_LARGE, f"key material is at most {MAX_PLAINTEXT_BYTES} bytes, got {len(plaintext)}")
    dek = AESGCM.generate_key(bit_length=DEK_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(dek).encrypt(nonce, plaintext, bound)
    return Envelope(kek_id=kek.kek_id, wrapped_dek=kek.wrap(dek, bound), nonce=nonce, ciphertext=ciphertext)


def open_envelope(envelope: Envelope, *, key_id: str, version: int, kek: KekProvider) -> bytes:
    """The material sealed for (`key_id`, `version`) under `kek`, or `RefusedError` (`tks.envelope_invalid`)."""
    bound = aad_for(key_id, version)
    where = f"{key_id}@{version}"
    if envelope.kek_id != kek.kek_id:
        raise _refused(f"sealed under KEK {envelope.kek_id!r}, not {kek.kek_id!r}", where + ":kek_id")
    try:
        dek = kek.unwrap(envelope.wrapped_dek, bound)
    except KekUnwrapError:
        raise _refused("the wrapped DEK does not open for this key version", where + ":wrapped_dek") from None
    if len(dek) != DEK_BYTES:
        raise _refused(f"the DEK is {len(dek)} bytes, not {DEK_BYTES}", where + ":wrapped_dek")
    try:
        return AESGCM(dek).decrypt(envelope.nonce, envelope.ciphertext, bound)
    except InvalidTag:
        raise _refused("the ciphertext does not authenticate for this key version", where + ":ciphertext") from None
