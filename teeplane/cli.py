"""The `teeplane` command: a root that mounts each part's commands.

A part's commands are imported only when they run (`teeplane operator run` loads neither the key
service nor the attestation services: a leaner process), and all of them for help, the docs and
tests (`teeplane.cli.app`).
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer

from teeplane import __version__
from teeplane.errors import TeeplaneError

#: Command groups: name -> the module whose Typer `app` holds them.
GROUPS = {
    "attest": "teeplane.attestation.cli",
    "eps": "teeplane.attestation.eps.cli",
    "ras": "teeplane.attestation.ras.cli",
    "agent": "teeplane.attestation.agent_cli",
    "tks": "teeplane.tks.cli",
    "keys": "teeplane.tks.keys_cli",
    "baseline": "teeplane.baseline.cli",
    "bgs": "teeplane.baseline.service.cli",
    "operator": "teeplane.operator.cli",
    "dev": "teeplane.dev.cli",
}
#: Single commands: name -> (module, function).
COMMANDS = {
    "verify": ("teeplane.attestation.verify_cli", "verify_command"),
    "demo": ("teeplane.demo.cli", "demo_command"),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"teeplane {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Exit codes: 0 success, 1 verification refused, 2 bad input or usage."""


def build(only: str | None = None) -> typer.Typer:
    """The root command with every part's commands, or with only the one named `only`."""
    root = typer.Typer(
        name="teeplane",
        help="TEEPlane: confidential workloads on Kubernetes, with transparent code attestation.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    root.callback()(_root)
    for name, module in GROUPS.items():
        if only in (None, name):
            root.add_typer(importlib.import_module(module).app, name=name)
    for name, (module, function) in COMMANDS.items():
        if only in (None, name):
            root.command(name)(getattr(importlib.import_module(module), function))
    return root


def __getattr__(name: str) -> Any:
    """`app`: the whole command tree (built on first use)."""
    if name == "app":
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: loads only the part the command line names. A typed error that no
    command reported itself (bad input to a server's options, say) is printed, not a traceback."""
    named = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        build(named if named in GROUPS or named in COMMANDS else None)()
    except TeeplaneError as error:
        print(f"error {error}", file=sys.stderr)
        sys.exit(error.exit_code)
