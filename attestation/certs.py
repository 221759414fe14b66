"""X.509 certificates, chains and CRLs for evidence appraisal.

Signature checks on certificates, CRLs and signed collateral are pure functions of their bytes,
so they are memoised: a warm verifier pays for them once per distinct input. Validity times are
never cached; they are compared against the evaluation time on every appraisal.
"""

from __future__ import annotations

import binascii
import re
import warnings
from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError

_P256 = ec.SECP256R1()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PEM_BEGIN = b"-----BEGIN"
_HEX = re.compile(rb"(?:[0-9a-fA-F]{2})+")


def load_certificates(
    data: bytes, what: str, code: Code = Code.QUOTE_PCK_CHAIN_MALFORMED
) -> tuple[x509.Certificate, ...]:
    """Certificates from PEM blocks or concatenated DER, in the order given."""
    return _load_certificates(bytes(data).strip(b"\x00\r\n\t "), what, code)


@lru_cache(maxsize=256)
def _load_certificates(data: bytes, what: str, code: Code) -> tuple[x509.Certificate, ...]:
    try:
        pem = data.startswith(_PEM_BEGIN)
        certs = tuple(x509.load_pem_x509_certificates(data) if pem else _split_der(data))
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(code, f"{what}: not a certificate chain ({exc})") from None
    if not certs:
        raise EvidenceFormatError(code, f"{what}: no certificate found")
    for index, cert in enumerate(certs):
        _force_parse(cert, f"{what}[{index}]", code)
    return certs


def _force_parse(cert: x509.Certificate, what: str, code: Code) -> None:
    """Decode every field the verifier reads now, so a malformed certificate fails here, typed.

    The X.509 library decodes fields lazily and raises assorted exceptions on bad DER; this is
    the boundary where untrusted certificates enter, so any such failure becomes one typed error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the library warns, rather than fails, on some bad DER
            _ = (cert.subject, cert.issuer, cert.serial_number, cert.extensions, cert.signature_algorithm_oid)
            _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.public_key())
            _ = (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string())
    except Exception as exc:
        raise EvidenceFormatError(code, f"{what}: malformed certificate ({type(exc).__name__}: {exc})") from None


def _split_der(data: bytes) -> list[x509.Certificate]:
    certs = []
    pos = 0
    while pos < len(data):
        if data[pos] != 0x30 or pos + 4 > len(data) or data[pos + 1] != 0x82:
            raise ValueError(f"no DER certificate at offset {pos}")
        end = pos + 4 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        certs.append(x509.load_der_x509_certificate(data[pos:end]))
        pos = end
    return certs


def load_crl(data: bytes, what: str) -> x509.CertificateRevocationList:
    """A CRL given as DER, PEM, or hex-encoded DER (the collateral bundle's form)."""
    return _load_crl(bytes(data).strip(), what)


def _load_crl(data: bytes, what: str) -> x509.CertificateRevocationList:
    try:
        if data.startswith(_PEM_BEGIN):
            return x509.load_pem_x509_crl(data)
        if _HEX.fullmatch(data):
            return x509.load_der_x509_crl(binascii.unhexlify(data))
        return x509.load_der_x509_crl(data)
    except (ValueError, binascii.Error) as exc:
        raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"{what}: not a CRL ({exc})") from None


def describe(cert: x509.Certificate) -> str:
    """A short name for a certificate in messages: its subject CN and serial."""
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(cns[0].value) if cns else cert.subject.rfc4514_string()
    return f"'{name}' (serial {cert.serial_number:x})"


@lru_cache(maxsize=1024)
def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer`'s name and key issued `cert` (memoised: certificates are immutable)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_chain_links(chain: Sequence[x509.Certificate], root: x509.Certificate, what: str) -> None:
    """Check `chain` (leaf first) links by name and signature to the pinned `root`.

    The chain may end with the root itself or with a certificate the root issued. Validity
    times are not judged here (see `cert_windows` in the callers). Raises AppraisalError naming
    the first certificate that does not hold.
    """
    certs = list(chain)
    if certs[-1] == root:
        certs.pop()
    elif certs[-1].subject == certs[-1].issuer:
        raise AppraisalError(
            Code.CERT_UNTRUSTED_ROOT,
            f"{what} ends in {describe(certs[-1])}, which is not the pinned root {describe(root)}",
            where=f"{what}[{len(certs) - 1}]",
        )
    if not certs:
        raise AppraisalError(Code.CERT_CHAIN_INVALID, f"{what} holds only the root", where=what)
    for index, (cert, issuer) in enumerate(zip(certs, [*certs[1:], root], strict=True)):
        if not issued_by(cert, issuer):
            code = Code.CERT_UNTRUSTED_ROOT if issuer is root else Code.CERT_CHAIN_INVALID
            raise AppraisalError(
                code,
                f"{what}: {describe(cert)} is not signed by {describe(issuer)}",
                where=f"{what}[{index}]",
            )


def crl_issuer_error(crl: x509.CertificateRevocationList, issuer: x509.Certificate, what: str) -> AppraisalError | None:
    """Why `issuer` did not issue and sign the CRL, or None if it did."""
    if crl.issuer != issuer.subject:
        return AppraisalError(
            Code.CRL_ISSUER_MISMATCH,
            f"{what} is issued by '{crl.issuer.rfc4514_string()}', expected {describe(issuer)}",
            where=what,
        )
    key = issuer.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and crl.is_signature_valid(key)):
        return AppraisalError(Code.CRL_SIGNATURE_INVALID, f"{what} is not signed by {describe(issuer)}", where=what)
    return None


@lru_cache(maxsize=4096)
def p256_key(xy: bytes) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key from its raw 64-byte x||y encoding (memoised: a platform's
    attestation key recurs in every quote it produces)."""
    return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + xy)


def raw_to_der_signature(raw: bytes) -> bytes:
    """Convert a raw r||s ECDSA signature into DER."""
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def ecdsa_p256_valid(key: ec.EllipticCurvePublicKey, raw_signature: bytes, data: bytes) -> bool:
    """An ECDSA P-256 / SHA-256 signature in raw r||s form verifies over `data`."""
    try:
        key.verify(raw_to_der_signature(raw_signature), data, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=256)
def signed_by_cert(cert: x509.Certificate, raw_signature: bytes, data: bytes) -> bool:
    """Memoised ECDSA P-256 check of a raw signature by a certificate's key (signed collateral)."""
    key = cert.public_key()
    return isinstance(key, ec.EllipticCurvePublicKey) and ecdsa_p256_valid(key, raw_signature, data)


def clear_caches() -> None:
    """Forget memoised certificates, links, keys and signature checks."""
    for cached in (_load_certificates, issued_by, signed_by_cert, p256_key):
        cached.cache_clear()
