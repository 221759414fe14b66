"""Released keys wrapped to the TEE's public key (JWE compact serialization, RFC 7516).

EC keys (P-256, P-384, P-521) get ECDH-ES+A256KW, RSA keys of 2048 to 4096 bits RSA-OAEP-256;
the content is always A256GCM. The protected header, authenticated with the content, carries
`cty` application/octet-stream and `teeplane.key` {"id", "version"}: which key version this is.
(`kid` is left alone: in a JWE it names the recipient's key, not the content.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from joserfc.registry import HeaderParameter
from joserfc.util import urlsafe_b64decode

from teeplane.errors import InputError
from teeplane.tks.models import MAX_SECRET_BYTES
from teeplane.tks.release import ReleaseCode, ReleaseRefused

EC_ALG = "ECDH-ES+A256KW"
RSA_ALG = "RSA-OAEP-256"
ENC = "A256GCM"
CONTENT_TYPE = "application/octet-stream"
KEY_HEADER = "teeplane.key"
RSA_BITS = (2048, 4096)

_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _key_header(value: object) -> None:
    version = value.get("version") if isinstance(value, dict) else None
    if not (isinstance(value, dict) and isinstance(value.get("id"), str) and type(version) is int):
        raise ValueError("must be {id: str, version: int}")


class _Registry(jwe.JWERegistry):
    # Room for the largest secret TKS stores (base64url grows it by a third).
    max_ciphertext_length = (MAX_SECRET_BYTES * 4 + 2) // 3


_REGISTRY = _Registry(
    header_registry={KEY_HEADER: HeaderParameter("TEEPlane key ID and version", _key_header, required=True)},
    algorithms=[EC_ALG, RSA_ALG, ENC],
)


def wrap_for_tee(secret: bytes, tee_jwk: Mapping[str, Any], *, key_id: str, version: int) -> str:
    """`secret` encrypted to the public key `tee_jwk`, as a JWE compact serialization.

    Raises ReleaseRefused (release.tee_key_unsupported, at cnf.jwk) for anything but a public
    P-256/P-384/P-521 or 2048-4096-bit RSA key meant for encryption.
    """
    key, alg = _tee_key(tee_jwk)
    header = {"alg": alg, "enc": ENC, "cty": CONTENT_TYPE, KEY_HEADER: {"id": key_id, "version": version}}
    return jwe.encrypt_compact(header, secret, key, registry=_REGISTRY)


def open_for_tee(token: str, private_key: Mapping[str, Any] | ECKey | RSAKey) -> bytes:
    """The secret in a JWE made by `wrap_for_tee`, decrypted with the TEE's private key.

    Raises InputError (release.jwe_invalid) when it does not decrypt with this key.
    """
    try:
        key = import_key(dict(private_key)) if isinstance(private_key, Mapping) else private_key
        plaintext = jwe.decrypt_compact(token, key, registry=_REGISTRY).plaintext
    except (JoseError, ValueError, TypeError):
        raise InputError(ReleaseCode.JWE_INVALID.value, "the JWE does not decrypt with this key") from None
    assert plaintext is not None  # set by every decryption that succeeds
    return plaintext


def _tee_key(jwk: Mapping[str, Any]) -> tuple[ECKey | RSAKey, str]:
    """The public key a JWK describes and the JWE alg for it, or tee_key_unsupported."""
    if not isinstance(jwk, Mapping) or _PRIVATE_MEMBERS & jwk.keys():
        raise _unsupported("the TEE key is not a public JWK")
    kty = jwk.get("kty")
    alg = EC_ALG if kty == "EC" else RSA_ALG if kty == "RSA" else None
    if alg is None:
        raise _unsupported(f"key type {kty!r} is not supported (use EC or RSA)")
    if jwk.get("use", "enc") != "enc" or jwk.get("alg", alg) != alg:
        raise _unsupported(f"the TEE key is not meant for {alg} encryption")
    try:
        return (_ec_key(jwk) if kty == "EC" else _rsa_key(jwk)), alg
    except (ValueError, TypeError):
        raise _unsupported(f"the TEE key is not a valid {kty} public key") from None


def _ec_key(jwk: Mapping[str, Any]) -> ECKey:
    crv = jwk.get("crv")
    curve = _CURVES.get(crv) if isinstance(crv, str) else None
    if curve is None:
        raise _unsupported(f"curve {crv!r} is not supported (use {', '.join(_CURVES)})")
    size = (curve.key_size + 7) // 8
    x, y = (_coordinate(jwk.get(name), size) for name in ("x", "y"))
    return ECKey.import_key(ec.EllipticCurvePublicNumbers(x, y, curve).public_key())


def _rsa_key(jwk: Mapping[str, Any]) -> RSAKey:
    n, e = (_unsigned(jwk.get(name)) for name in ("n", "e"))
    if not RSA_BITS[0] <= n.bit_length() <= RSA_BITS[1]:
        raise _unsupported(f"an RSA key of {n.bit_length()} bits is not supported (use {RSA_BITS[0]}-{RSA_BITS[1]})")
    return RSAKey.import_key(rsa.RSAPublicNumbers(e, n).public_key())


def _coordinate(value: object, size: int) -> int:
    """An EC coordinate: base64url of exactly `size` bytes (RFC 7518, section 6.2.1.2)."""
    raw = _bytes(value)
    if len(raw) != size:
        raise ValueError("coordinate of the wrong length")
    return int.from_bytes(raw, "big")


def _unsigned(value: object) -> int:
    raw = _bytes(value)
    if not raw:
        raise ValueError("empty integer")
    return int.from_bytes(raw, "big")


def _bytes(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a base64url string")
    return urlsafe_b64decode(value.encode())


def _unsupported(message: str) -> ReleaseRefused:
    return ReleaseRefused(ReleaseCode.TEE_KEY_UNSUPPORTED, message, where="cnf.jwk")
