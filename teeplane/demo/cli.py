"""`teeplane demo`: start (or reuse) the development stack and run the demo's steps on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from teeplane.baseline.client import BgsClient
from teeplane.demo.flow import BASELINE_NAME, BASELINE_VERSION, run
from teeplane.demo.kube import apply_example
from teeplane.demo.step import Step
from teeplane.dev.hack import hack_dir
from teeplane.dev.stack import Stack, default_state_dir, up
from teeplane.errors import TeeplaneError
from teeplane.tls import trusting


def demo_command(
    state_dir: Annotated[
        Path | None, typer.Option(help="The development stack's state (default: $TEEPLANE_DEV_STATE or XDG state).")
    ] = None,
    kube: Annotated[
        bool | None,
        typer.Option(
            "--kube/--no-kube", help="Also apply the example to the local Kubernetes (default: when it is available)."
        ),
    ] = None,
) -> None:
    """TEEPlane's whole job on this machine, simulated: baseline, key, attested TD, outsider's check, refusal.

    Starts the development stack first when it is not running (`teeplane dev up`); it is left running
    (`teeplane dev down` stops it). Exit 0 when every step had its expected outcome.
    """
    console = Console(soft_wrap=True)
    state = state_dir or default_state_dir()
    try:
        with console.status("starting the development stack") as status:
            stack = up(state, kube=kube, progress=lambda message: status.update(message))
    except TeeplaneError as error:
        console.print(f"[red]error[/] {error}", highlight=False)
        raise typer.Exit(error.exit_code) from None
    console.print(
        f"development stack up under {stack.state_dir}: RAS, BGS, etcd and {len(stack.tks_urls)} TKS replicas"
        + (", Kubernetes with the operator" if stack.kubeconfig else ""),
        highlight=False,
    )
    failed = _show(console, _steps(stack))
    console.print("[bold green]demo passed[/]" if not failed else f"[bold red]{failed} step(s) failed[/]")
    raise typer.Exit(1 if failed else 0)


def _steps(stack: Stack) -> Iterable[Step]:
    workdir = stack.state_dir / "demo"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    yield from run(stack, workdir)
    if stack.kubeconfig is not None:
        bgs = BgsClient(stack.bgs_url, verify=trusting(stack.ca_file))
        baseline_id = bgs.get(f"{BASELINE_NAME}@{BASELINE_VERSION}").id
        yield from apply_example(stack, stack.kubeconfig, hack_dir().parent / "examples", baseline_id)


def _show(console: Console, steps: Iterable[Step]) -> int:
    """Print each step as it finishes; the number that failed (a step raising ends the demo)."""
    failed = 0
    number = 0
    try:
        for number, step in enumerate(steps, start=1):
            mark = "[green]ok[/]" if step.ok else "[red]FAILED[/]"
            console.print(f"{number:>2}. {mark} {step.title}", highlight=False)
            for line in step.evidence.splitlines():
                console.print(f"      {line}", style="dim", highlight=False)
            failed += not step.ok
    except TeeplaneError as error:
        console.print(f"{number + 1:>2}. [red]FAILED[/] {error}", highlight=False)
        failed += 1
    return failed
