"""Generated TLS material: a private CA and the serving certificates it issues (for the operator's
admission webhook, `dev up`, and tests). ECDSA P-256, SHA-256, short-lived by default."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teeplane.errors import InputError

DEFAULT_VALIDITY = timedelta(days=365)
#: How a client checks a server's certificate: the system's trust store (True), or an SSL context.
Verify = bool | ssl.SSLContext


def trusting(ca_file: Path | str | None) -> Verify:
    """Verify servers against `ca_file` (a PEM bundle), or the system's trust store when None;
    InputError (`input.unreadable`) naming the file if it cannot be read or holds no certificate."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError:
        problem = f"CA file {ca_file} holds no PEM certificate"
    except OSError as exc:
        problem = f"cannot read CA file {ca_file}: {exc.strerror}"
    raise InputError("input.unreadable", problem, where=str(ca_file))


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate and the key (0600)."""
        cert_path.write_bytes(self.cert_pem)
        key_path.touch(mode=0o600, exist_ok=True)
        key_path.chmod(0o600)
        key_path.write_bytes(self.key_pem)


@dataclass(frozen=True)
class CertificateAuthority:
    """A private CA that issues serving certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, name: str, validity: timedelta = DEFAULT_VALIDITY) -> CertificateAuthority:
        """A new self-signed CA named `name`."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        cert = (
            _builder(subject, subject, key.public_key(), now, validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM: the trust anchor clients pin."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue_server(self, hosts: Sequence[str], validity: timedelta = DEFAULT_VALIDITY) -> Issued:
        """A serving certificate for DNS names and IP addresses in `hosts` (the first is the CN)."""
        if not hosts:
            raise ValueError("a serving certificate needs at least one host")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        cert = (
            _builder(subject, self.cert.subject, key.public_key(), datetime.now(UTC), validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime, validity: timedelta
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)
