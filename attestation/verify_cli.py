"""`teeplane verify URL`: an outsider's check of a running service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from teeplane.attestation.cli import AtOption, JsonFlag, fail, finish, parse_time, policy_from_options
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.reference import ReferenceValues
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.trust import anchor_from_pem, intel_root
from teeplane.attestation.verify import BaselineTrust, verify_service
from teeplane.baseline.bundle import BaselineBundle, read_bundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.keys import load_log_verifier, load_public_key
from teeplane.errors import InputError, TeeplaneError
from teeplane.io import read_file
from teeplane.options import CaFile
from teeplane.tls import Verify, trusting


def _reference(path: Path) -> ReferenceValues:
    try:
        return ReferenceValues.model_validate_json(read_file(path, "reference values"))
    except ValidationError as exc:
        raise EvidenceFormatError(Code.INPUT_UNREADABLE, f"reference values {path}: {exc.errors()[0]['msg']}") from None


def _bundle(path: Path | None, baseline_id: str | None, bgs: str | None, verify: Verify) -> BaselineBundle | None:
    """The baseline bundle from a file, or fetched by ID from a BGS (checked to be that ID)."""
    if baseline_id is None:
        return read_bundle(read_file(path, "baseline bundle")) if path is not None else None
    if bgs is None or path is not None:
        raise InputError("input.unreadable", "--baseline-id needs --bgs, and no --baseline")
    record = BgsClient(bgs, verify=verify).get(baseline_id)
    return BaselineBundle(envelope=record.envelope, proof=record.proof)


def _baseline_trust(
    bundle: BaselineBundle | None,
    from_service: bool,
    signer_keys: list[Path],
    log_key: str | None,
    reference: Path | None,
) -> BaselineTrust | None:
    """What the baseline options ask for, checked for sense."""
    if bundle is None and not from_service:
        return None
    if bundle is not None and from_service:
        raise InputError("input.unreadable", "give a baseline (--baseline, --baseline-id) or --baseline-from-service")
    if reference is not None:
        raise InputError("input.unreadable", "give --reference or a baseline, not both")
    if not signer_keys or log_key is None:
        raise InputError("input.unreadable", "a baseline is verified under --signer-key and --log-key: give both")
    return BaselineTrust(
        [load_public_key(read_file(path, "signer key")) for path in signer_keys],
        load_log_verifier(log_key),
        bundle,
    )


def verify_command(
    url: Annotated[str, typer.Argument(help="The service's EPS base URL.")],
    reference: Annotated[Path | None, typer.Option(help="Reference values JSON to judge the measurements.")] = None,
    collateral: Annotated[Path | None, typer.Option(help="Collateral bundle (default: the service's).")] = None,
    root: Annotated[Path | None, typer.Option(help="Trust anchor PEM instead of the Intel root.")] = None,
    allow_simulated: Annotated[bool, typer.Option(help="Accept evidence under a non-Intel root.")] = False,
    accept_tcb: Annotated[str, typer.Option(help="Accepted TCB statuses, comma-separated.")] = "UpToDate",
    allow_debug: Annotated[bool, typer.Option(help="Accept a TD with debug enabled.")] = False,
    baseline: Annotated[
        Path | None, typer.Option(help="Judge by this baseline bundle (verified under --signer-key and --log-key).")
    ] = None,
    baseline_id: Annotated[
        str | None, typer.Option(help="Judge by this baseline, fetched from --bgs (verified the same way).")
    ] = None,
    bgs: Annotated[
        str | None, typer.Option(envvar="TEEPLANE_BGS_URL", help="The BGS to fetch --baseline-id from.")
    ] = None,
    baseline_from_service: Annotated[
        bool, typer.Option(help="Judge by the baseline bundle the service serves (verified the same way).")
    ] = False,
    signer_key: Annotated[
        list[Path] | None, typer.Option(help="Pinned BGS baseline-signing public key, PEM (repeatable).")
    ] = None,
    log_key: Annotated[
        str | None, typer.Option(help="Pinned transparency-log verifier key (<origin>+<id>+<key>), or a file.")
    ] = None,
    at: AtOption = None,
    ca_file: CaFile = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch fresh evidence for our own nonce from URL and appraise it (exit 0 accepted, 1 refused, 2 error)."""
    try:
        tls = trusting(ca_file)
        bundle = _bundle(baseline, baseline_id, bgs, tls)
        trust = _baseline_trust(bundle, baseline_from_service, signer_key or [], log_key, reference)
        anchor = intel_root() if root is None else anchor_from_pem(read_file(root, "root"), simulated=True)
        appraisal = verify_service(
            EpsClient(url, verify=tls),
            anchor=anchor,
            at=parse_time(at),
            policy=policy_from_options(accept_tcb, allow_debug, allow_simulated),
            reference=_reference(reference) if reference else None,
            collateral=load_bundle(read_file(collateral, "collateral")) if collateral else None,
            baseline=trust,
        )
    except TeeplaneError as error:
        fail(error, as_json)
        return
    finish(appraisal, as_json)
