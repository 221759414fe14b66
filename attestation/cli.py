"""`teeplane attest`: verify TDX quotes and SEV-SNP reports from files.

Exit codes: 0 accepted, 1 refused (verification or policy), 2 unreadable input or bad usage.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.eventlog import parse_event_log
from teeplane.attestation.render import render_appraisal
from teeplane.attestation.snp.appraise import appraise_snp
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle, load_pcs_files
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import anchor_from_pem, intel_root
from teeplane.errors import TeeplaneError
from teeplane.io import read_file

app = typer.Typer(help="Verify TEE evidence (TDX quotes, SEV-SNP reports).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
AtOption = Annotated[
    str | None, typer.Option("--at", help="Evaluation time, RFC 3339 (default: now).", metavar="RFC3339")
]


def parse_time(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise EvidenceFormatError(Code.INPUT_UNREADABLE, f"--at {value!r} is not an RFC 3339 time") from None
    if at.tzinfo is None:
        raise EvidenceFormatError(Code.INPUT_UNREADABLE, f"--at {value!r} needs a UTC offset, e.g. Z")
    return at.astimezone(UTC)


def policy_from_options(accept_tcb: str, allow_debug: bool, allow_simulated: bool) -> Policy:
    """The appraisal policy the CLI options describe (`--accept-tcb` is comma-separated)."""
    return Policy(
        accepted_tcb_statuses=frozenset(s.strip() for s in accept_tcb.split(",") if s.strip()),
        allow_debug=allow_debug,
        allow_simulated=allow_simulated,
    )


def finish(appraisal: Appraisal, as_json: bool) -> None:
    """Print the verdict (JSON or tables) and exit 0 if accepted, 1 if refused."""
    if as_json:
        typer.echo(json.dumps(appraisal.to_json(), indent=2))
    else:
        render_appraisal(appraisal, Console())
    raise typer.Exit(0 if appraisal.accepted else 1)


def fail(error: TeeplaneError, as_json: bool) -> None:
    """Print a typed error (JSON or text) and exit with its exit code."""
    if as_json:
        typer.echo(json.dumps({"verified": False, "accepted": False, "errors": [error.to_dict()]}, indent=2))
    else:
        Console(stderr=True).print(f"[red]error[/] {error}", highlight=False)
    raise typer.Exit(error.exit_code)


def _collateral(
    bundle: Path | None,
    tcb_info: Path | None,
    qe_identity: Path | None,
    tcb_signing_chain: Path | None,
    pck_crl: Path | None,
    root_ca_crl: Path | None,
) -> Collateral | None:
    files = (tcb_info, qe_identity, tcb_signing_chain)
    if bundle is not None:
        if any(f is not None for f in (*files, pck_crl, root_ca_crl)):
            raise EvidenceFormatError(
                Code.INPUT_UNREADABLE, "give either --collateral or the separate collateral files, not both"
            )
        return load_bundle(read_file(bundle, "collateral bundle"))
    if all(f is None for f in files):
        return None
    if any(f is None for f in files):
        raise EvidenceFormatError(
            Code.COLLATERAL_MISSING,
            "separate collateral needs --tcb-info, --qe-identity and --tcb-signing-chain",
        )
    assert tcb_info is not None and qe_identity is not None and tcb_signing_chain is not None
    return load_pcs_files(
        read_file(tcb_info, "TCB Info"),
        read_file(qe_identity, "QE Identity"),
        read_file(tcb_signing_chain, "TCB signing chain"),
        read_file(pck_crl, "PCK CRL") if pck_crl else None,
        read_file(root_ca_crl, "root CA CRL") if root_ca_crl else None,
    )


@app.command("verify-quote")
def verify_quote(
    quote: Annotated[Path, typer.Argument(help="TDX quote (v4 or v5), raw bytes.")],
    collateral: Annotated[Path | None, typer.Option("--collateral", help="Collateral bundle JSON.")] = None,
    tcb_info: Annotated[Path | None, typer.Option(help="PCS TCB Info response JSON.")] = None,
    qe_identity: Annotated[Path | None, typer.Option(help="PCS QE Identity response JSON.")] = None,
    tcb_signing_chain: Annotated[Path | None, typer.Option(help="TCB signing chain PEM.")] = None,
    pck_crl: Annotated[Path | None, typer.Option(help="PCK CRL (DER, PEM or hex).")] = None,
    root_ca_crl: Annotated[Path | None, typer.Option(help="Root CA CRL (DER, PEM or hex).")] = None,
    at: AtOption = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Trust anchor PEM instead of the Intel SGX Root CA (results then say simulated)."),
    ] = None,
    eventlog: Annotated[Path | None, typer.Option(help="CCEL event log to replay against RTMR0..3.")] = None,
    accept_tcb: Annotated[str, typer.Option(help="Accepted TCB statuses, comma-separated.")] = "UpToDate",
    allow_debug: Annotated[bool, typer.Option(help="Accept a TD with debug enabled.")] = False,
    allow_simulated: Annotated[bool, typer.Option(help="Accept evidence under a non-Intel root.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Appraise a TDX quote with DCAP collateral, as Intel's Quote Verification Library does."""
    try:
        parsed = parse_quote(read_file(quote, "quote"))
        when = parse_time(at)
        bundle = _collateral(collateral, tcb_info, qe_identity, tcb_signing_chain, pck_crl, root_ca_crl)
        anchor = intel_root() if root is None else anchor_from_pem(read_file(root, "root"), simulated=True)
        log = parse_event_log(read_file(eventlog, "event log")) if eventlog else None
        policy = policy_from_options(accept_tcb, allow_debug, allow_simulated)
    except TeeplaneError as error:
        fail(error, as_json)
        return
    finish(appraise_quote(parsed, bundle, anchor, when, policy, event_log=log), as_json)


@app.command("verify-snp")
def verify_snp(
    report: Annotated[Path, typer.Argument(help="SEV-SNP attestation report, raw bytes.")],
    cert: Annotated[Path, typer.Option("--cert", help="VCEK or VLEK certificate (PEM or DER).")],
    chain: Annotated[Path, typer.Option("--chain", help="ASK (or ASVK) and ARK, PEM.")],
    at: AtOption = None,
    allow_debug: Annotated[bool, typer.Option(help="Accept a guest whose policy allows debug.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Appraise an AMD SEV-SNP attestation report against its VCEK/VLEK and AMD's chain."""
    try:
        data = read_file(report, "report")
        cert_bytes = read_file(cert, "certificate")
        chain_bytes = read_file(chain, "chain")
        when = parse_time(at)
        appraisal = appraise_snp(data, cert_bytes, chain_bytes, when, Policy(allow_debug=allow_debug))
    except TeeplaneError as error:
        fail(error, as_json)
        return
    finish(appraisal, as_json)
