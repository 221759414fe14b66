"""Trust anchors: the pinned Intel SGX Root CA, or a simulation root for development."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from teeplane.attestation.certs import describe, load_certificates
from teeplane.attestation.errors import Code
from teeplane.errors import TeeplaneError

#: Intel SGX Root CA, as published by Intel (also pinned by go-tdx-guest and dcap-qvl).
INTEL_SGX_ROOT_CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
"""
#: SHA-256 of the Intel SGX Root CA certificate (DER), checked when the anchor is loaded.
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"


@dataclass(frozen=True, eq=False)
class TrustAnchor:
    """A pinned root certificate. `simulated` marks the simulated-TEE root: every result derived
    from it says `simulated: true`. Anchors compare by identity (cheap as a cache key)."""

    root: x509.Certificate
    simulated: bool = False

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the root certificate's DER, hex."""
        return hashlib.sha256(self.root.public_bytes(Encoding.DER)).hexdigest()

    def __str__(self) -> str:
        return describe(self.root)


@cache
def intel_root() -> TrustAnchor:
    """The Intel SGX Root CA anchor (checked against its pinned fingerprint)."""
    anchor = TrustAnchor(load_certificates(INTEL_SGX_ROOT_CA_PEM, "Intel SGX Root CA")[0])
    if anchor.fingerprint != INTEL_SGX_ROOT_CA_SHA256:
        raise RuntimeError("the embedded Intel SGX Root CA does not match its pinned fingerprint")
    return anchor


def anchor_from_pem(data: bytes, *, simulated: bool = False) -> TrustAnchor:
    """A trust anchor from a PEM or DER root certificate given by the user."""
    certs = load_certificates(data, "root certificate", Code.INPUT_UNREADABLE)
    root = certs[-1]
    if intel_root().root == root:
        return intel_root()
    return TrustAnchor(root, simulated=simulated)


def anchor_for_chain(chain: bytes, anchors: tuple[TrustAnchor, ...]) -> TrustAnchor:
    """The configured anchor whose root ends (or issued the end of) a PCK chain; else the first.

    Falling back to the first anchor (the Intel root in production) means a chain under an
    unknown root is appraised, and refused, against the real trust anchor with the reason shown.
    """
    try:
        last = load_certificates(chain, "PCK chain")[-1]
    except TeeplaneError:
        return anchors[0]
    for anchor in anchors:
        if last == anchor.root or last.issuer == anchor.root.subject:
            return anchor
    return anchors[0]
