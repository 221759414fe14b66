"""`teeplane eps serve`: run the Evidence Provision Service in a pod (or a simulated TD)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from teeplane.attestation.eps.app import create_eps_app
from teeplane.attestation.eps.provider import (
    ConfigfsTsmProvider,
    EvidenceProvider,
    SimulatedTdxProvider,
)
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import FILE_NAMES, SimulationAuthority
from teeplane.baseline.boot import boot_simulated_td
from teeplane.baseline.bundle import bundle_id, read_bundle
from teeplane.baseline.recipe import load_recipe
from teeplane.errors import InputError, TeeplaneError
from teeplane.http import serve
from teeplane.io import read_file

app = typer.Typer(help="The Evidence Provision Service.", no_args_is_help=True)


class ProviderKind(StrEnum):
    """Where evidence comes from."""

    CONFIGFS = "configfs"
    SIMULATED = "simulated"


@app.command("serve")
def serve_command(
    provider: Annotated[
        ProviderKind, typer.Option(help="configfs: the TEE via Linux configfs-tsm; simulated: a simulated TD.")
    ] = ProviderKind.CONFIGFS,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8443,
    sim_state: Annotated[
        Path | None,
        typer.Option(help="Simulation authority directory (loaded; generated and saved there if empty)."),
    ] = None,
    recipe: Annotated[
        Path | None,
        typer.Option(help="Simulated: boot the TD from this recipe's artifacts (default: the built-in example TD)."),
    ] = None,
    baseline_id: Annotated[str | None, typer.Option(help="The baseline ID the workload was built from.")] = None,
    baseline_bundle: Annotated[
        Path | None,
        typer.Option(help="The workload's published baseline bundle: served as its log proof (its ID as baseline ID)."),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM); needs --tls-key.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
) -> None:
    """Serve the EPS on HOST:PORT until interrupted."""
    try:
        if (tls_cert is None) != (tls_key is None):
            raise InputError("input.unreadable", "give --tls-cert and --tls-key together")
        if (sim_state is not None or recipe is not None) and provider is not ProviderKind.SIMULATED:
            raise InputError("input.unreadable", "--sim-state and --recipe need --provider simulated")
        source = _simulated(sim_state, recipe) if provider is ProviderKind.SIMULATED else ConfigfsTsmProvider()
        log_proof = None
        if baseline_bundle is not None:
            bundle = read_bundle(read_file(baseline_bundle, "baseline bundle"))
            if baseline_id is not None and baseline_id != bundle_id(bundle):
                raise InputError("input.unreadable", f"--baseline-id {baseline_id} is not the bundle's baseline")
            baseline_id, log_proof = bundle_id(bundle), bundle.model_dump(mode="json", exclude_none=True)
        eps = create_eps_app(source, baseline_id=baseline_id, log_proof=log_proof)
    except TeeplaneError as error:
        Console(stderr=True).print(f"[red]error[/] {error}", highlight=False)
        raise typer.Exit(error.exit_code) from None
    serve(eps, host, port, certfile=_str(tls_cert), keyfile=_str(tls_key))


def _simulated(state: Path | None, recipe: Path | None) -> EvidenceProvider:
    """A TD booted from `recipe` (or the example TD) under the authority in `state` (made there if it
    holds none; in memory if None)."""
    now = datetime.now(UTC)
    try:
        if state is not None and any((state / name).exists() for name in FILE_NAMES):
            authority = SimulationAuthority.load(state)
        else:
            authority = SimulationAuthority.generate(now)
            if state is not None:
                authority.save(state)
    except OSError as exc:
        raise InputError("input.unreadable", f"simulation state {state}: {exc.strerror or exc}") from None
    td = boot_example_td(authority) if recipe is None else boot_simulated_td(authority, load_recipe(recipe))
    return SimulatedTdxProvider(td, bundle_json(authority, now))


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
