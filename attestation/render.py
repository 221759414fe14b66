"""Human-readable rendering of an appraisal (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from teeplane.attestation.appraisal import Appraisal


def render_appraisal(appraisal: Appraisal, console: Console) -> None:
    """Print the checks, the measurements and the verdict."""
    checks = Table(title="Checks", show_lines=False)
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail", overflow="fold")
    for check in appraisal.checks:
        checks.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail)
    console.print(checks)

    facts = Table(title="Evidence", show_header=False)
    facts.add_column("field")
    facts.add_column("value", overflow="fold")
    facts.add_row("tee", appraisal.tee)
    if appraisal.quote_version is not None:
        facts.add_row("quote version", str(appraisal.quote_version))
    facts.add_row("simulated", str(appraisal.simulated).lower())
    facts.add_row("debug", str(appraisal.debug).lower())
    if appraisal.fmspc:
        facts.add_row("fmspc", appraisal.fmspc)
    if appraisal.tcb_status:
        advisories = f" ({', '.join(appraisal.advisory_ids)})" if appraisal.advisory_ids else ""
        facts.add_row("tcb status", appraisal.tcb_status + advisories)
    for name, value in appraisal.measurements.items():
        facts.add_row(name, value)
    console.print(facts)

    if appraisal.accepted:
        console.print("[bold green]ACCEPTED[/]: verified and accepted by the policy")
    elif appraisal.verified:
        console.print("[bold red]REFUSED[/] by the policy (evidence verified)")
    else:
        console.print("[bold red]REFUSED[/]: verification failed")
    for error in [*appraisal.errors, *appraisal.policy_errors]:
        console.print(f"  [red]{error.code}[/] {error.message}", highlight=False)
