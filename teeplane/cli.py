"""The `teeplane` command: a root that mounts each part's commands."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from teeplane import __version__
from teeplane.attestation.agent_cli import app as agent_app
from teeplane.attestation.cli import app as attest_app
from teeplane.attestation.demo import run as run_demo
from teeplane.attestation.eps.cli import app as eps_app
from teeplane.attestation.ras.cli import app as ras_app
from teeplane.attestation.verify_cli import verify_command
from teeplane.baseline.cli import app as baseline_app
from teeplane.baseline.service.cli import app as bgs_app
from teeplane.dev.cli import app as dev_app
from teeplane.operator.cli import app as operator_app
from teeplane.tks.cli import app as tks_app
from teeplane.tks.keys_cli import app as keys_app

app = typer.Typer(
    name="teeplane",
    help="TEEPlane: confidential workloads on Kubernetes, with transparent code attestation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"teeplane {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Exit codes: 0 success, 1 verification refused, 2 bad input or usage."""


app.add_typer(attest_app, name="attest")
app.add_typer(eps_app, name="eps")
app.add_typer(ras_app, name="ras")
app.add_typer(agent_app, name="agent")
app.add_typer(tks_app, name="tks")
app.add_typer(keys_app, name="keys")
app.add_typer(baseline_app, name="baseline")
app.add_typer(bgs_app, name="bgs")
app.add_typer(operator_app, name="operator")
app.add_typer(dev_app, name="dev")
app.command("verify")(verify_command)


@app.command()
def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Where to write the evidence (default: a new temporary directory).")
    ] = None,
) -> None:
    """Attest a simulated TD end to end and show what a verifier accepts and refuses."""
    console = Console()
    target = workdir or Path(tempfile.mkdtemp(prefix="teeplane-demo-"))
    failed = 0
    for number, step in enumerate(run_demo(target), start=1):
        mark = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
        console.print(f"{number:>2}. {mark} {step.title}", highlight=False)
        console.print(f"      {step.evidence}", style="dim", highlight=False)
        failed += not step.ok
    console.print("[bold green]demo passed[/]" if not failed else f"[bold red]{failed} step(s) failed[/]")
    raise typer.Exit(1 if failed else 0)


def main() -> None:
    """Console-script entry point."""
    app()
