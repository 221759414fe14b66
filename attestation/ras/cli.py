"""`teeplane ras serve`: run the Remote Attestation Service."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from teeplane.attestation.ras.app import create_ras_app
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.pcs import INTEL_PCS_URL, INTEL_ROOT_CA_CRL_URL, PcsFetcher
from teeplane.attestation.ras.service import RasConfig, RemoteAttestationService
from teeplane.attestation.ras.store import RasStore
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.trust import anchor_from_pem
from teeplane.auth import hash_admin_token
from teeplane.errors import InputError
from teeplane.http import serve
from teeplane.io import read_file
from teeplane.tls import trusting

app = typer.Typer(help="The Remote Attestation Service.", no_args_is_help=True)


def load_admin_hashes(path: Path) -> list[str]:
    """Admin tokens from a file: one per line, raw or already hashed as `sha256:<hex>`."""
    lines = [line.strip() for line in read_file(path, "admin token file").decode().splitlines()]
    hashes = [line if line.startswith("sha256:") else hash_admin_token(line) for line in lines if line]
    if not hashes:
        raise InputError("input.unreadable", f"{path} holds no admin token")
    return hashes


@app.command("serve")
def serve_command(
    state: Annotated[Path, typer.Option(help="Directory for the RAS database (shared by replicas).")],
    admin_token_file: Annotated[Path, typer.Option(help="Admin tokens, one per line (raw or sha256:<hex>).")],
    collateral_dir: Annotated[Path | None, typer.Option(help="Directory of DCAP collateral bundles (*.json).")] = None,
    simulation_root: Annotated[
        Path | None, typer.Option(help="Also trust this simulated-TEE root (results say simulated).")
    ] = None,
    simulation_collateral: Annotated[Path | None, typer.Option(help="Collateral bundle of the simulation.")] = None,
    amd_chain: Annotated[list[Path] | None, typer.Option(help="AMD ASK/ARK chain PEM (repeatable).")] = None,
    pcs_url: Annotated[
        str | None,
        typer.Option(help=f"Fetch TDX collateral the files lack from this Intel PCS or PCCS (e.g. {INTEL_PCS_URL})."),
    ] = None,
    pcs_root_ca_crl_url: Annotated[
        str, typer.Option(help="Where the Intel SGX Root CA CRL is fetched (with --pcs-url).")
    ] = INTEL_ROOT_CA_CRL_URL,
    pcs_ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle (PEM) that signs the PCS/PCCS TLS certificate; default: system.")
    ] = None,
    issuer: Annotated[str, typer.Option(help="Token issuer (iss).")] = "https://ras.teeplane.local",
    audience: Annotated[str, typer.Option(help="Token audience (aud).")] = "teeplane-tks",
    alg: Annotated[str, typer.Option(help="Token signing algorithm: ES256 or ES384.")] = "ES256",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8500,
    tls_cert: Annotated[Path | None, typer.Option()] = None,
    tls_key: Annotated[Path | None, typer.Option()] = None,
    at: Annotated[
        str | None, typer.Option(help="Fixed evaluation time, RFC 3339 (replaying recorded evidence).")
    ] = None,
    replay_recorded_evidence: Annotated[
        bool,
        typer.Option(help="Accept recorded evidence that cannot bind a fresh nonce (needs --at; tokens say replayed)."),
    ] = False,
) -> None:
    """Serve RAS on HOST:PORT until interrupted."""
    fetcher = None
    if pcs_url is not None:
        if not pcs_url.startswith(("https://", "http://")):
            raise typer.BadParameter("expected an http(s) base URL", param_hint="--pcs-url")
        fetcher = PcsFetcher(pcs_url, root_ca_crl_url=pcs_root_ca_crl_url, verify=trusting(pcs_ca_file))
    collateral = CollateralCache(fetcher)
    if collateral_dir is not None:
        collateral.load_directory(collateral_dir)
    if simulation_collateral is not None:
        collateral.add(load_bundle(read_file(simulation_collateral, "simulation collateral")))
    config = RasConfig(
        issuer=issuer,
        audience=audience,
        signing_alg=alg,
        simulation_anchor=anchor_from_pem(read_file(simulation_root, "root"), simulated=True)
        if simulation_root
        else None,
        amd_chains=tuple(read_file(p, "AMD chain") for p in amd_chain or ()),
        replay_recorded_evidence=replay_recorded_evidence,
    )
    if replay_recorded_evidence and at is None:
        raise typer.BadParameter("--replay-recorded-evidence needs a fixed --at", param_hint="--at")
    if at is not None:
        fixed = datetime.fromisoformat(at)
        config.clock = lambda: fixed
    service = RemoteAttestationService(RasStore(state / "ras.db", config.clock), collateral, config)
    serve(
        create_ras_app(service, load_admin_hashes(admin_token_file)),
        host,
        port,
        certfile=str(tls_cert) if tls_cert else None,
        keyfile=str(tls_key) if tls_key else None,
    )
