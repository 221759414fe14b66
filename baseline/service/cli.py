"""`teeplane bgs serve`: run the Baseline Generation System."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeplane.attestation.ras.cli import load_admin_hashes
from teeplane.baseline.keys import load_log_signer, load_public_key, load_signer
from teeplane.baseline.service.app import create_bgs_app
from teeplane.baseline.service.registry import BaselineRegistry
from teeplane.http import serve
from teeplane.io import read_file

app = typer.Typer(help="The Baseline Generation System.", no_args_is_help=True)


@app.command("serve")
def serve_command(
    state: Annotated[Path, typer.Option(help="Directory of the transparency log and the baseline index.")],
    admin_token_file: Annotated[Path, typer.Option(help="Admin tokens, one per line (raw or sha256:<hex>).")],
    signing_key: Annotated[Path, typer.Option(help="Baseline signing key, PEM (Ed25519 or ECDSA P-256).")],
    log_key: Annotated[Path, typer.Option(help="The log's checkpoint key, Ed25519 PEM.")],
    origin: Annotated[str, typer.Option(help="The log's origin, e.g. bgs.example.com/baselines.")],
    trusted_signer: Annotated[
        list[Path] | None, typer.Option(help="Also accept envelopes signed by this public key, PEM (repeatable).")
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8700,
    tls_cert: Annotated[Path | None, typer.Option()] = None,
    tls_key: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Serve BGS on HOST:PORT until interrupted."""
    log_signer = load_log_signer(read_file(log_key, "log key"), origin)
    registry = BaselineRegistry.open(
        state,
        log_signer,
        load_signer(read_file(signing_key, "signing key")),
        [load_public_key(read_file(p, "trusted signer key")) for p in trusted_signer or ()],
    )
    typer.echo(f"log {origin}: {registry.size} entries, verifier key {log_signer.verifier.vkey}", err=True)
    try:
        serve(
            create_bgs_app(registry, load_admin_hashes(admin_token_file)),
            host,
            port,
            certfile=str(tls_cert) if tls_cert else None,
            keyfile=str(tls_key) if tls_key else None,
        )
    finally:
        registry.close()
