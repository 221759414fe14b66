"""`teeplane tks serve`: run one Trusted Key Service replica."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from teeplane.attestation.ras.cli import load_admin_hashes
from teeplane.http import serve
from teeplane.remote import raise_for_problem
from teeplane.tks.app import create_tks_app
from teeplane.tks.kek import FileKek, KekProvider, Pkcs11Kek
from teeplane.tks.node import NodeConfig, TksNode
from teeplane.tls import Verify, trusting

app = typer.Typer(help="The Trusted Key Service.", no_args_is_help=True)


def _fetch_jwks(url: str, verify: Verify) -> dict[str, Any]:
    response = httpx.get(url, timeout=5.0, verify=verify)
    raise_for_problem(response)
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("the JWKS is not a JSON object")
    return body


@app.command("serve")
def serve_command(
    etcd: Annotated[str, typer.Option(help="etcd members, host:port[,host:port...].")],
    admin_token_file: Annotated[Path, typer.Option(help="Admin tokens, one per line (raw or sha256:<hex>).")],
    ras_url: Annotated[
        str | None, typer.Option(help="RAS base URL: its JWKS, and attestation for the KBS protocol.")
    ] = None,
    ras_jwks_url: Annotated[
        str | None, typer.Option(help="RAS's JWKS URL (default: <ras-url>/.well-known/jwks.json).")
    ] = None,
    kek_file: Annotated[Path | None, typer.Option(help="Development KEK: 32 bytes (raw, hex or base64).")] = None,
    pkcs11: Annotated[bool, typer.Option(help="Use the PKCS#11 KEK configured by TEEPLANE_TKS_PKCS11_*.")] = False,
    member_id: Annotated[str | None, typer.Option(help="This replica's id (default: random).")] = None,
    advertise_url: Annotated[str | None, typer.Option(help="URL other replicas reach this one at.")] = None,
    issuer: Annotated[str, typer.Option(help="Accepted token issuer.")] = "https://ras.teeplane.local",
    audience: Annotated[str, typer.Option(help="This service's token audience.")] = "teeplane-tks",
    lease_ttl: Annotated[
        int, typer.Option(help="Leader lease TTL in seconds (etcd raises it to its own minimum).")
    ] = 1,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8600,
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM chain).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle for the TLS certificates of RAS and the other replicas.")
    ] = None,
) -> None:
    """Serve one replica on HOST:PORT until interrupted."""
    if ras_jwks_url is not None:
        jwks_url = ras_jwks_url
    elif ras_url is not None:
        jwks_url = f"{ras_url.rstrip('/')}/.well-known/jwks.json"
    else:
        raise typer.BadParameter("give --ras-url (or at least --ras-jwks-url)", param_hint="--ras-url")
    if (kek_file is None) == (not pkcs11):
        raise typer.BadParameter("give exactly one of --kek-file and --pkcs11", param_hint="--kek-file")
    kek: KekProvider = FileKek.from_file(kek_file) if kek_file else Pkcs11Kek.from_env(dict(os.environ))
    config = NodeConfig(
        etcd_endpoints=[e.strip() for e in etcd.split(",") if e.strip()],
        member_id=member_id or uuid.uuid4().hex[:12],
        advertise_url=advertise_url or f"{'https' if tls_cert else 'http'}://{host}:{port}",
        issuer=issuer,
        audience=audience,
        lease_ttl=lease_ttl,
    )
    verify = trusting(ca_file)
    node = TksNode(config, kek, lambda: _fetch_jwks(jwks_url, verify))
    serve(
        create_tks_app(node, load_admin_hashes(admin_token_file), ras_url=ras_url, verify=verify),
        host,
        port,
        certfile=str(tls_cert) if tls_cert else None,
        keyfile=str(tls_key) if tls_key else None,
    )
