"""The generated secrets and keys of a development stack, each created once and then reused: the TLS
CA and the services' certificate, the admin token, the TKS KEK, the simulated TEE's authority and
collateral, and the BGS signing and log keys."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.pki import SimulationAuthority, pem
from teeplane.baseline.keys import generate_signer, load_log_signer, private_pem, public_pem
from teeplane.dev.layout import Layout
from teeplane.tls import CertificateAuthority

#: The BGS log's origin (it names the log in checkpoints and in its verifier key).
LOG_ORIGIN = "dev.teeplane.local/baselines"
#: Loopback names every service certificate covers.
HOSTS = ("127.0.0.1", "localhost", "::1")
#: The collateral is valid 30 days from its issue; it is written anew when older than this.
COLLATERAL_REFRESH = timedelta(days=7)
#: Material lives for years: a development stack is not rotated.
VALIDITY = timedelta(days=3650)


def ensure(layout: Layout) -> None:
    """Create whatever material is missing under `layout` (secrets 0600); existing files are kept."""
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tls(layout)
    if not layout.admin_token_file.exists():
        write(layout.admin_token_file, (secrets.token_urlsafe(32) + "\n").encode(), secret=True)
    if not layout.kek_file.exists():
        write(layout.kek_file, secrets.token_bytes(32), secret=True)
    _simulation(layout)
    _bgs_keys(layout)


def write(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write `path` atomically (0600 when `secret`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


# Each group of files is written with the file checked for last, so an interrupted first `up` is
# completed by the next one instead of leaving half a key pair.


def _tls(layout: Layout) -> None:
    if not layout.ca_key.exists():
        authority = CertificateAuthority.generate("TEEPlane dev CA", VALIDITY)
        key = authority.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        layout.server_key.unlink(missing_ok=True)
        write(layout.ca_file, authority.cert_pem)
        write(layout.ca_key, key, secret=True)
    if not layout.server_key.exists():
        issued = _load_ca(layout).issue_server(HOSTS, VALIDITY)
        write(layout.server_cert, issued.cert_pem + layout.ca_file.read_bytes())
        write(layout.server_key, issued.key_pem, secret=True)


def _load_ca(layout: Layout) -> CertificateAuthority:
    key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return CertificateAuthority(x509.load_pem_x509_certificate(layout.ca_file.read_bytes()), key)


def _simulation(layout: Layout) -> None:
    now = datetime.now(UTC)
    if not layout.sim_root.exists():
        authority = SimulationAuthority.generate(now - timedelta(hours=1), VALIDITY)
        authority.save(layout.sim_dir)
        write(layout.sim_root, pem(authority.root_cert))
        layout.sim_collateral.unlink(missing_ok=True)
    collateral = layout.sim_collateral
    if not collateral.exists() or time.time() - collateral.stat().st_mtime > COLLATERAL_REFRESH.total_seconds():
        write(collateral, bundle_json(SimulationAuthority.load(layout.sim_dir), now - timedelta(minutes=5)))


def _bgs_keys(layout: Layout) -> None:
    if not layout.bgs_signing_key.exists():
        signer = generate_signer()
        write(layout.bgs_signer_public, public_pem(signer))
        write(layout.bgs_signing_key, private_pem(signer), secret=True)
    if not layout.bgs_log_private.exists():
        log_key = private_pem(generate_signer())
        write(layout.bgs_log_vkey, (load_log_signer(log_key, LOG_ORIGIN).verifier.vkey + "\n").encode())
        write(layout.bgs_log_private, log_key, secret=True)
