"""`teeplane dev up | down | status`: the development stack from the command line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from teeplane.dev.stack import Stack, default_state_dir, down, status, up
from teeplane.errors import TeeplaneError

#: `status` exit code when a component is not running or not healthy (as in LSB init scripts).
NOT_HEALTHY = 3

app = typer.Typer(
    help="The whole control plane on this machine: etcd, RAS, a 3-replica TKS, BGS and, when available, "
    "a local Kubernetes with the operator.",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="State directory (default: $TEEPLANE_DEV_STATE, else ~/.local/state/teeplane/dev)."
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _fail(error: TeeplaneError, as_json: bool) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"ok": False, "errors": [error.to_dict()]}, indent=2))
    else:
        Console(stderr=True).print(f"[red]error[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


@app.command("up")
def up_command(
    state_dir: StateDir = None,
    kube: Annotated[
        bool | None,
        typer.Option(
            "--kube/--no-kube",
            help="Run Kubernetes and the operator (default: when hack/cluster.sh's builds and kubectl are there).",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    """Start what is not running (a second `up` only checks), then print how to reach everything."""
    console = Console(stderr=True)
    try:
        with console.status("teeplane dev up") as spinner:

            def progress(message: str) -> None:
                console.print(f"[green]•[/] {escape(message)}", highlight=False)
                spinner.update(message)

            stack = up(state_dir or default_state_dir(), kube=kube, progress=progress)
    except TeeplaneError as error:
        _fail(error, as_json)
    if as_json:
        typer.echo(stack.to_json())
    else:
        _show(stack)


def _show(stack: Stack) -> None:
    table = Table(title=f"TEEPlane dev stack ({stack.state_dir})", show_header=False)
    rows = [
        ("etcd", ", ".join(stack.etcd_endpoints)),
        ("RAS", stack.ras_url),
        *((f"TKS replica {i}", url) for i, url in enumerate(stack.tks_urls)),
        ("BGS", stack.bgs_url),
        ("CA file", str(stack.ca_file)),
        ("admin token file", str(stack.admin_token_file)),
        ("BGS signer (public)", str(stack.bgs_signer_key)),
        ("BGS log key", str(stack.bgs_log_key)),
        ("simulated TEE", str(stack.sim_dir)),
        ("logs", str(stack.logs_dir)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    if stack.kubeconfig is not None:
        console.print(f"export KUBECONFIG={stack.kubeconfig}", highlight=False, soft_wrap=True)
    else:
        console.print("Kubernetes: not started (see `teeplane dev up --kube`)", highlight=False)


@app.command("down")
def down_command(
    state_dir: StateDir = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the state directory.")] = False,
) -> None:
    """Stop every process of the stack; keep its state (keys, data, ports) unless --purge."""
    target = state_dir or default_state_dir()
    try:
        down(target, purge=purge)
    except TeeplaneError as error:
        _fail(error, False)
    typer.echo(f"stopped{' and deleted' if purge else ''}: {target}")


@app.command("status")
def status_command(state_dir: StateDir = None, as_json: Json = False) -> None:
    """Show each component: pid, URL, running, healthy (exit 3 unless everything runs healthy)."""
    target = state_dir or default_state_dir()
    components = status(target)
    if as_json:
        typer.echo(json.dumps({"state_dir": str(target), "components": [asdict(c) for c in components]}, indent=2))
    else:
        table = Table("component", "pid", "URL", "running", "healthy", title=f"TEEPlane dev stack ({target})")
        for c in components:
            table.add_row(c.name, str(c.pid or "-"), c.url or "-", _mark(c.running), _mark(c.healthy))
        Console().print(table if components else f"nothing was started under {target}")
    if not components or not all(c.healthy for c in components):
        raise typer.Exit(NOT_HEALTHY)


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"
