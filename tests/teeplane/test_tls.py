"""Generated TLS material: the issued serving certificate verifies under the CA, for its hosts only."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from teeplane.tls import CertificateAuthority


def _verify(ca: CertificateAuthority, cert_pem: bytes, host: x509.DNSName | x509.IPAddress) -> None:
    verifier = PolicyBuilder().store(Store([ca.cert])).time(datetime.now(UTC)).build_server_verifier(host)
    verifier.verify(x509.load_pem_x509_certificate(cert_pem), [])


def test_a_serving_certificate_verifies_for_its_hosts() -> None:
    ca = CertificateAuthority.generate("teeplane test CA")
    issued = ca.issue_server(["webhook.teeplane.svc", "127.0.0.1"])
    _verify(ca, issued.cert_pem, x509.DNSName("webhook.teeplane.svc"))
    _verify(ca, issued.cert_pem, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    with pytest.raises(VerificationError):
        _verify(ca, issued.cert_pem, x509.DNSName("other.teeplane.svc"))
    with pytest.raises(VerificationError):
        _verify(CertificateAuthority.generate("another CA"), issued.cert_pem, x509.DNSName("webhook.teeplane.svc"))


def test_keys_are_written_private(tmp_path: Path) -> None:
    issued = CertificateAuthority.generate("ca").issue_server(["localhost"])
    issued.write(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    with pytest.raises(ValueError, match="at least one host"):
        CertificateAuthority.generate("ca").issue_server([])
