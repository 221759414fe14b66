"""Baseline signing keys in PEM files: Ed25519 or ECDSA P-256, as securesystemslib signers and keys.

A private key is PKCS#8 PEM, a public key SubjectPublicKeyInfo PEM. Signing goes through
securesystemslib's `Signer` interface, so a KMS, HSM or Sigstore signer (`Signer.from_priv_key_uri`)
can replace the file key; verification pins `SSlibKey`s, whose key IDs are securesystemslib's
default (SHA-256 of the canonical key).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from securesystemslib.signer import CryptoSigner, SSlibKey

from teeplane.baseline.errors import BaselineInputError, Code
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.baseline.tlog.note import Verifier
from teeplane.io import read_file


class KeyType(StrEnum):
    """The key types baselines are signed with."""

    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"


def generate_signer(key_type: KeyType = KeyType.ED25519) -> CryptoSigner:
    """A new random signing key."""
    if key_type == KeyType.ED25519:
        return CryptoSigner.generate_ed25519()
    return CryptoSigner.generate_ecdsa()


def private_pem(signer: CryptoSigner) -> bytes:
    """The signer's private key as PKCS#8 PEM (unencrypted: protect the file)."""
    return signer.private_bytes


def public_pem(signer: CryptoSigner) -> bytes:
    """The signer's public key as SubjectPublicKeyInfo PEM."""
    public_key = load_pem_private_key(signer.private_bytes, password=None).public_key()
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _check_type(key: object, what: str) -> None:
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return
    raise BaselineInputError(Code.KEY_UNSUPPORTED, f"{what} is neither Ed25519 nor ECDSA P-256")


def load_signer(pem: bytes, what: str = "the signing key") -> CryptoSigner:
    """A signer from a PKCS#8 PEM private key (Ed25519 or ECDSA P-256, unencrypted)."""
    try:
        private_key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BaselineInputError(Code.KEY_MALFORMED, f"{what} is not an unencrypted PEM private key") from None
    _check_type(private_key, what)
    return CryptoSigner(private_key)


def load_public_key(pem: bytes, what: str = "the public key") -> SSlibKey:
    """A verification key from PEM: a public key, or the public half of a private key."""
    try:
        public_key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        return load_signer(pem, what).public_key
    _check_type(public_key, what)
    return SSlibKey.from_crypto(public_key)


def load_log_signer(pem: bytes, origin: str) -> LogSigner:
    """The log's checkpoint signer: an Ed25519 PEM private key named by the log's origin (c2sp convention)."""
    signer = load_signer(pem, "the log key")
    private_key = load_pem_private_key(signer.private_bytes, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise BaselineInputError(Code.KEY_UNSUPPORTED, "the log key must be Ed25519 (c2sp signed notes)")
    return LogSigner(origin, private_key)


def load_log_verifier(value: str) -> Verifier:
    """A log's c2sp verifier key (`<origin>+<id>+<key>`), given as such or in a file."""
    path = Path(value)
    text = read_file(path, "log key").decode().strip() if path.is_file() else value.strip()
    return Verifier.from_vkey(text)
