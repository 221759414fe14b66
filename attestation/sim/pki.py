"""The simulation PKI: a root CA, PCK platform CA, PCK certificate, TCB signing certificate, their
CRLs and the QE attestation key, shaped like Intel's DCAP PKI (ECDSA P-256 throughout).

Quotes signed under it verify only where its root is the trust anchor. It serializes to a dict of
PEM files (`to_pem` / `from_pem`); `save` / `load` persist that dict, keys readable by the owner only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.sim import platform
from teeplane.attestation.sim.der import encode_sgx_extensions
from teeplane.attestation.tdx.pck import SGX_EXTENSIONS_OID, PckExtensions

#: Default validity of the certificates and CRLs `generate` makes.
DEFAULT_VALIDITY = timedelta(days=365)
ORGANIZATION = "TEEPlane (simulated)"
ROOT_CA_NAME = "TEEPlane Simulated SGX Root CA"
PCK_CA_NAME = "TEEPlane Simulated SGX PCK Platform CA"
PCK_NAME = "TEEPlane Simulated SGX PCK Certificate"
TCB_SIGNING_NAME = "TEEPlane Simulated SGX TCB Signing"

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_KEY_FILES = ("root.key", "pck-ca.key", "pck.key", "tcb-signing.key", "attestation.key")
_CERT_FILES = ("root.pem", "pck-ca.pem", "pck.pem", "tcb-signing.pem")
_CRL_FILES = ("root-ca-crl.pem", "pck-crl.pem")
#: The file names of a serialized authority.
FILE_NAMES = (*_CERT_FILES, *_CRL_FILES, *_KEY_FILES)


@dataclass(frozen=True, eq=False)
class SimulationAuthority:
    """The keys, certificates and CRLs of one simulated TDX platform."""

    root_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca_cert: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck_cert: x509.Certificate
    tcb_signing_key: ec.EllipticCurvePrivateKey
    tcb_signing_cert: x509.Certificate
    attestation_key: ec.EllipticCurvePrivateKey
    root_ca_crl: x509.CertificateRevocationList
    pck_crl: x509.CertificateRevocationList

    @classmethod
    def generate(cls, now: datetime, validity: timedelta = DEFAULT_VALIDITY) -> SimulationAuthority:
        """A fresh authority whose certificates and (empty) CRLs are valid from `now` for `validity`."""
        if now.tzinfo is None:
            raise ValueError("`now` must be timezone-aware")
        until = now + validity
        root_key, pck_ca_key, pck_key, tcb_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
        root = _certificate(ROOT_CA_NAME, root_key.public_key(), None, root_key, now, until, path_length=1)
        pck_ca = _certificate(PCK_CA_NAME, pck_ca_key.public_key(), root, root_key, now, until, path_length=0)
        sgx = PckExtensions(
            ppid=os.urandom(16),
            sgx_tcb_components=platform.SGX_TCB_COMPONENTS,
            pcesvn=platform.PCESVN,
            cpusvn=platform.CPUSVN,
            pce_id=platform.PCE_ID,
            fmspc=platform.FMSPC,
            sgx_type=platform.SGX_TYPE_STANDARD,
        )
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSIONS_OID), encode_sgx_extensions(sgx))
        pck = _certificate(PCK_NAME, pck_key.public_key(), pck_ca, pck_ca_key, now, until, extensions=(extension,))
        tcb = _certificate(TCB_SIGNING_NAME, tcb_key.public_key(), root, root_key, now, until)
        return cls(
            root_key=root_key,
            root_cert=root,
            pck_ca_key=pck_ca_key,
            pck_ca_cert=pck_ca,
            pck_key=pck_key,
            pck_cert=pck,
            tcb_signing_key=tcb_key,
            tcb_signing_cert=tcb,
            attestation_key=ec.generate_private_key(ec.SECP256R1()),
            root_ca_crl=_crl(root, root_key, now, until, ()),
            pck_crl=_crl(pck_ca, pck_ca_key, now, until, ()),
        )

    def reissue_crls(
        self, at: datetime, next_update: datetime, revoked_pck_serials: Iterable[int] = ()
    ) -> SimulationAuthority:
        """This authority with both CRLs issued anew at `at`, the PCK CRL revoking the given serials."""
        return replace(
            self,
            root_ca_crl=_crl(self.root_cert, self.root_key, at, next_update, ()),
            pck_crl=_crl(self.pck_ca_cert, self.pck_ca_key, at, next_update, revoked_pck_serials),
        )

    def pck_chain_pem(self) -> bytes:
        """The PCK chain a quote carries: PCK certificate, PCK platform CA, root CA."""
        return pem(self.pck_cert, self.pck_ca_cert, self.root_cert)

    def to_pem(self) -> dict[str, bytes]:
        """Every key, certificate and CRL as PEM, by file name (see `FILE_NAMES`)."""
        certs = (self.root_cert, self.pck_ca_cert, self.pck_cert, self.tcb_signing_cert)
        keys = (self.root_key, self.pck_ca_key, self.pck_key, self.tcb_signing_key, self.attestation_key)
        crls = (self.root_ca_crl, self.pck_crl)
        out = {name: pem(cert) for name, cert in zip(_CERT_FILES, certs, strict=True)}
        out.update((name, crl.public_bytes(Encoding.PEM)) for name, crl in zip(_CRL_FILES, crls, strict=True))
        out.update(
            (name, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
            for name, key in zip(_KEY_FILES, keys, strict=True)
        )
        return out

    @classmethod
    def from_pem(cls, files: Mapping[str, bytes]) -> SimulationAuthority:
        """The authority `to_pem` serialized; every key must match its certificate."""
        root_key, pck_ca_key, pck_key, tcb_key, attestation_key = (_load_key(files, n) for n in _KEY_FILES)
        root, pck_ca, pck, tcb = (_load_cert(files, n) for n in _CERT_FILES)
        root_ca_crl, pck_crl = (_load_crl(files, n) for n in _CRL_FILES)
        pairs = zip(_KEY_FILES[:4], (root_key, pck_ca_key, pck_key, tcb_key), (root, pck_ca, pck, tcb), strict=True)
        for name, key, cert in pairs:
            if key.public_key() != cert.public_key():
                raise _unreadable(name, "does not match its certificate")
        return cls(
            root_key,
            root,
            pck_ca_key,
            pck_ca,
            pck_key,
            pck,
            tcb_key,
            tcb,
            attestation_key,
            root_ca_crl,
            pck_crl,
        )

    def save(self, directory: Path) -> None:
        """Write the PEM files into `directory` (created 0700); private keys are written 0600."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data in self.to_pem().items():
            _write(directory / name, data, 0o600 if name.endswith(".key") else 0o644)

    @classmethod
    def load(cls, directory: Path) -> SimulationAuthority:
        """The authority `save` wrote into `directory`."""
        return cls.from_pem({n: (directory / n).read_bytes() for n in FILE_NAMES if (directory / n).is_file()})


def pem(*certs: x509.Certificate) -> bytes:
    """Certificates as concatenated PEM, in the order given."""
    return b"".join(cert.public_bytes(Encoding.PEM) for cert in certs)


def sign_p256(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """An ECDSA P-256 / SHA-256 signature over `data` in the raw r||s form quotes and collateral use."""
    r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The raw 64-byte x||y encoding of a P-256 key's public point."""
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]


def _certificate(
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
    *,
    path_length: int | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A certificate issued by `issuer` (self-signed when None); a CA when `path_length` is given."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )
    is_ca = path_length is not None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca,
                content_commitment=not is_ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    at: datetime,
    next_update: datetime,
    revoked: Iterable[int],
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(at)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(int(at.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for serial in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at).build()
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(issuer_key, hashes.SHA256())


def _unreadable(name: str, what: str) -> EvidenceFormatError:
    return EvidenceFormatError(Code.INPUT_UNREADABLE, f"simulation authority: {name} {what}", where=name)


def _file(files: Mapping[str, bytes], name: str) -> bytes:
    data = files.get(name)
    if data is None:
        raise _unreadable(name, "is missing")
    return data


def _load_key(files: Mapping[str, bytes], name: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = load_pem_private_key(_file(files, name), password=None)
    except (ValueError, TypeError) as exc:
        raise _unreadable(name, f"is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _unreadable(name, "is not an ECDSA P-256 key")
    return key


def _load_cert(files: Mapping[str, bytes], name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_file(files, name))
    except ValueError as exc:
        raise _unreadable(name, f"is not a PEM certificate ({exc})") from None


def _load_crl(files: Mapping[str, bytes], name: str) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(_file(files, name))
    except ValueError as exc:
        raise _unreadable(name, f"is not a PEM CRL ({exc})") from None


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)
