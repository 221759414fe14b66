"""The `teeplane` command: a root that mounts each part's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from teeplane import __version__
from teeplane.attestation.agent_cli import app as agent_app
from teeplane.attestation.cli import app as attest_app
from teeplane.attestation.eps.cli import app as eps_app
from teeplane.attestation.ras.cli import app as ras_app
from teeplane.attestation.verify_cli import verify_command
from teeplane.baseline.cli import app as baseline_app
from teeplane.baseline.service.cli import app as bgs_app
from teeplane.demo.cli import demo_command
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
app.command("demo")(demo_command)


def main() -> None:
    """Console-script entry point."""
    app()
