"""The `teeplane` command: a root that mounts each part's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from teeplane import __version__
from teeplane.attestation.cli import app as attest_app

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


def main() -> None:
    """Console-script entry point."""
    app()
