"""`teeplane baseline`: build, sign, publish, fetch, show and verify baseline bundles.

Exit codes: 0 done (verified), 1 refused (a signature, proof or consistency check failed, or the BGS
refused the credentials), 2 unreadable input or bad usage. `--json` prints one object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from teeplane.attestation.cli import parse_time
from teeplane.baseline import dsse
from teeplane.baseline.build import measure_recipe
from teeplane.baseline.bundle import BaselineBundle, Consistency, dump_bundle, read_bundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.document import PAYLOAD_TYPE, BaselineDocument, BaselineMetadata, build_document, parse_document
from teeplane.baseline.errors import BaselineInputError, Code
from teeplane.baseline.keys import (
    KeyType,
    generate_signer,
    load_log_signer,
    load_log_verifier,
    load_public_key,
    load_signer,
    private_pem,
    public_pem,
)
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.recipe import load_recipe
from teeplane.baseline.service.models import BaselineRecord
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.checkpoint import Checkpoint, open_checkpoint, peek_checkpoint
from teeplane.baseline.tlog.proof import parse_proof
from teeplane.baseline.verify import VerifiedBaseline, verify_bundle
from teeplane.errors import TeeplaneError
from teeplane.io import read_file
from teeplane.options import CaFile
from teeplane.remote import first_error
from teeplane.tls import trusting

app = typer.Typer(help="Baselines: build, sign, publish, fetch, show and verify.", no_args_is_help=True)

_Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
_Bgs = Annotated[str, typer.Option("--bgs", envvar="TEEPLANE_BGS_URL", help="BGS base URL.")]
_Token = Annotated[
    str | None, typer.Option(envvar="TEEPLANE_BGS_TOKEN", help="Admin bearer token.", show_default=False)
]
_TokenFile = Annotated[Path | None, typer.Option(help="Read the admin bearer token from this file.")]


def _fail(error: TeeplaneError, as_json: bool, failed: dict[str, Any]) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": False, **failed, "errors": [error.to_dict()]}, indent=2))
    else:
        Console(stderr=True).print(f"[red]error[/] {error}", highlight=False)
    raise typer.Exit(error.exit_code)


def _run(
    as_json: bool,
    action: Callable[[], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
    failed: dict[str, Any] | None = None,
) -> None:
    """Run `action`; print its result (JSON or through `show`), or its typed error (JSON: with the
    fields of `failed`) and exit with the error's exit code."""
    try:
        result = action()
    except TeeplaneError as error:
        _fail(error, as_json, failed or {})
        return
    if as_json:
        typer.echo(json.dumps({"ok": True, **result}, indent=2))
    else:
        show(result)


def _client(bgs: str, ca_file: Path | None, token: str | None = None, token_file: Path | None = None) -> BgsClient:
    if token_file is not None:
        token = read_file(token_file, "admin token file").decode().strip()
    return BgsClient(bgs, admin_token=token, verify=trusting(ca_file))


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a new file, or replace one atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _read_bundle(path: Path) -> BaselineBundle:
    return read_bundle(read_file(path, "baseline bundle"))


def _record_bundle(record: BaselineRecord, consistency: Consistency | None = None) -> BaselineBundle:
    return BaselineBundle(envelope=record.envelope, proof=record.proof, consistency=consistency)


# -- keys


@app.command("keygen")
def keygen(
    output: Annotated[Path, typer.Option("-o", "--output", help="Private key file; the public key goes to OUT.pub.")],
    key_type: Annotated[KeyType, typer.Option("--type", help="Key type.")] = KeyType.ED25519,
    origin: Annotated[
        str | None, typer.Option(help="Make a log key for this origin (Ed25519): also write OUT.vkey.")
    ] = None,
    as_json: _Json = False,
) -> None:
    """Generate a baseline signing key (or, with --origin, a log checkpoint key)."""

    def action() -> dict[str, Any]:
        if origin is not None and key_type != KeyType.ED25519:
            raise BaselineInputError(Code.KEY_UNSUPPORTED, "a log key is Ed25519")
        paths = [output, output.with_name(output.name + ".pub")]
        if origin is not None:
            paths.append(output.with_name(output.name + ".vkey"))
        if any(p.exists() for p in paths):
            raise BaselineInputError(Code.KEY_EXISTS, f"will not overwrite {', '.join(map(str, paths))}")
        signer = generate_signer(key_type)
        _write(output, private_pem(signer), 0o600)
        _write(paths[1], public_pem(signer))
        result: dict[str, Any] = {"private_key": str(output), "public_key": str(paths[1])}
        result["keyid"] = signer.public_key.keyid
        if origin is not None:
            vkey = load_log_signer(private_pem(signer), origin).verifier.vkey
            _write(paths[2], (vkey + "\n").encode())
            result |= {"vkey_file": str(paths[2]), "vkey": vkey}
        return result

    _run(as_json, action, lambda r: typer.echo("\n".join(f"{k}: {v}" for k, v in r.items())))


# -- building and publishing


def _measure(recipe: Path) -> ExpectedMeasurements:
    """Run the measurement calculators over a recipe."""
    return measure_recipe(load_recipe(recipe))


def _metadata(path: Path | None) -> BaselineMetadata:
    if path is None:
        return BaselineMetadata()
    try:
        return BaselineMetadata.model_validate_json(read_file(path, "metadata"))
    except ValidationError as exc:
        raise BaselineInputError(Code.BASELINE_MALFORMED, first_error(exc), where=str(path)) from None


def _summary(document: BaselineDocument, bundle: BaselineBundle) -> dict[str, Any]:
    predicate = document.statement.predicate
    log: dict[str, Any] | None = None
    if bundle.proof is not None:
        proof = parse_proof(bundle.proof.encode())
        checkpoint = peek_checkpoint(proof.checkpoint)
        log = {"origin": checkpoint.origin, "index": proof.index, "tree_size": checkpoint.size}
    return {
        "id": document.id,
        "tee": predicate.measurements.tee,
        "name": predicate.name,
        "version": predicate.version,
        "signatures": [s.keyid for s in bundle.envelope.signatures],
        "log": log,
    }


def _show_summary(result: dict[str, Any]) -> None:
    typer.echo(f"{result['id']} written to {result['file']}")
    if result["log"] is not None:
        typer.echo(f"logged in {result['log']['origin']} at index {result['log']['index']}")


@app.command("build")
def build(
    recipe: Annotated[Path, typer.Argument(help="The recipe (YAML): artifacts and how the VM boots them.")],
    signing_key: Annotated[Path, typer.Option(help="Signing key, PEM (Ed25519 or ECDSA P-256).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the baseline bundle.")],
    metadata: Annotated[
        Path | None, typer.Option(help="Metadata JSON: name, version, vmm, builder, source, validity.")
    ] = None,
    valid_days: Annotated[int, typer.Option(min=1, help="Validity from now, unless the metadata sets it.")] = 365,
    bgs: Annotated[str | None, typer.Option(envvar="TEEPLANE_BGS_URL", help="Also publish to this BGS.")] = None,
    token: _Token = None,
    token_file: _TokenFile = None,
    ca_file: CaFile = None,
    as_json: _Json = False,
) -> None:
    """Measure a recipe, write and sign its baseline, and write the bundle (published with --bgs)."""

    def action() -> dict[str, Any]:
        signer = load_signer(read_file(signing_key, "signing key"))
        document = build_document(_measure(recipe), _metadata(metadata), valid_for=timedelta(days=valid_days))
        bundle = BaselineBundle(envelope=dsse.sign(document.payload, PAYLOAD_TYPE, [signer]))
        if bgs is not None:
            bundle = _record_bundle(_client(bgs, ca_file, token, token_file).publish(bundle.envelope))
        _write(output, dump_bundle(bundle))
        return {**_summary(document, bundle), "file": str(output)}

    _run(as_json, action, _show_summary)


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="Baseline bundle (its envelope is published).")],
    bgs: _Bgs,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Where to write the logged bundle (default: FILE).")
    ] = None,
    token: _Token = None,
    token_file: _TokenFile = None,
    ca_file: CaFile = None,
    as_json: _Json = False,
) -> None:
    """Publish a signed baseline to a BGS and write the bundle with its inclusion proof."""

    def action() -> dict[str, Any]:
        bundle = _record_bundle(_client(bgs, ca_file, token, token_file).publish(_read_bundle(file).envelope))
        target = output or file
        _write(target, dump_bundle(bundle))
        return {**_summary(_document(bundle), bundle), "file": str(target)}

    _run(as_json, action, _show_summary)


@app.command("fetch")
def fetch(
    baseline_id: Annotated[
        str, typer.Argument(metavar="ID", help="Baseline ID (sha256:<hex>) or name@version (the latest of it).")
    ],
    bgs: _Bgs,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the bundle.")],
    since: Annotated[
        Path | None,
        typer.Option(help="A checkpoint seen before: add the proof that the log extends it to the bundle."),
    ] = None,
    ca_file: CaFile = None,
    as_json: _Json = False,
) -> None:
    """Fetch a baseline and its inclusion proof from a BGS into a bundle."""

    def action() -> dict[str, Any]:
        client = _client(bgs, ca_file)
        record = client.get(baseline_id)
        consistency = None
        if since is not None:
            old = peek_checkpoint(read_file(since, "checkpoint")).size
            new = peek_checkpoint(parse_proof(record.proof.encode()).checkpoint).size
            if old > new:
                raise BaselineInputError(Code.CHECKPOINT_UNPROVEN, f"--since is of size {old}, the log of {new}")
            hashes = client.consistency_proof(old, new) if 0 < old < new else []
            consistency = Consistency(size=old, hashes=[b64.encode(h) for h in hashes])
        bundle = _record_bundle(record, consistency)
        _write(output, dump_bundle(bundle))
        return {**_summary(_document(bundle), bundle), "file": str(output)}

    _run(as_json, action, _show_summary)


# -- reading


def _document(bundle: BaselineBundle) -> BaselineDocument:
    """The bundle's baseline document, read without checking any signature."""
    return parse_document(b64.decode(bundle.envelope.payload, Code.DSSE_MALFORMED, "the payload"))


def _document_table(document: BaselineDocument, title: str) -> Table:
    predicate = document.statement.predicate
    measurements = predicate.measurements
    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("id", document.id)
    table.add_row("name", f"{predicate.name or '-'} {predicate.version or ''}".strip())
    table.add_row("tee", measurements.tee)
    validity = predicate.validity.model_dump(mode="json")
    table.add_row("valid", f"{validity['notBefore']} to {validity['notAfter']}")
    table.add_row("builder", predicate.builder.id)
    if predicate.source is not None:
        table.add_row("source", f"{predicate.source.uri} {json.dumps(predicate.source.digest)}")
    vmm = predicate.vmm.model_dump(exclude_none=True)
    table.add_row("vmm", ", ".join(f"{k}={v}" for k, v in vmm.items()))
    for subject in document.statement.subject:
        table.add_row(subject.name, ", ".join(f"{alg}:{value}" for alg, value in subject.digest.items()))
    for rtmr, events in measurements.events.items():
        for number, event in enumerate(events):
            table.add_row(f"{rtmr} event {number}", f"{event.digest} {event.description}".strip())
    return table


@app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="Baseline bundle.")],
    as_json: _Json = False,
) -> None:
    """Show a bundle's baseline, WITHOUT verifying it (see `baseline verify`)."""

    def action() -> dict[str, Any]:
        bundle = _read_bundle(file)
        document = _document(bundle)
        statement = document.statement.model_dump(mode="json", exclude_none=True)
        return {**_summary(document, bundle), "verified": False, "statement": statement}

    def render(result: dict[str, Any]) -> None:
        bundle = _read_bundle(file)
        console = Console()
        console.print(_document_table(_document(bundle), "baseline (not verified)"))
        log = result["log"]
        where = f"index {log['index']} of {log['origin']} (size {log['tree_size']})" if log else "not logged"
        console.print(f"signed by {', '.join(result['signatures'])}; {where}", highlight=False)

    _run(as_json, action, render)


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="Baseline bundle.")],
    signer_key: Annotated[list[Path], typer.Option(help="Pinned baseline signing public key, PEM (repeatable).")],
    log_key: Annotated[str, typer.Option(help="The log's verifier key (<origin>+<id>+<key>), or a file holding it.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="A signed checkpoint seen before: the log must extend it (or be extended by it)."),
    ] = None,
    bgs: Annotated[
        str | None, typer.Option(envvar="TEEPLANE_BGS_URL", help="Fetch the consistency proof from this BGS.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Check the validity window at this time, RFC 3339 (default: now).")
    ] = None,
    ca_file: CaFile = None,
    as_json: _Json = False,
) -> None:
    """Verify a bundle: signature, statement, validity, log inclusion and, with --checkpoint, no fork."""

    def action() -> dict[str, Any]:
        bundle = _read_bundle(file)
        keys = [load_public_key(read_file(p, "signer key")) for p in signer_key]
        verifier = load_log_verifier(log_key)
        previous = None
        consistency = None
        if checkpoint is not None:
            previous = open_checkpoint(read_file(checkpoint, "checkpoint"), verifier.name, [verifier])
            consistency = _consistency(bundle, previous, None if bgs is None else _client(bgs, ca_file))
        verified = verify_bundle(bundle, keys, verifier, parse_time(at), previous=previous, consistency=consistency)
        return _verified_json(verified)

    def render(result: dict[str, Any]) -> None:
        bundle = _read_bundle(file)
        console = Console()
        console.print(_document_table(_document(bundle), "baseline [green]verified[/]"))
        log = result["log"]
        console.print(f"signed by {', '.join(result['signers'])}", highlight=False)
        console.print(f"logged at index {log['index']} of {log['origin']} (size {log['tree_size']})", highlight=False)
        if result["consistent_with"] is not None:
            console.print(f"the log extends the checkpoint of size {result['consistent_with']['tree_size']}")

    _run(as_json, action, render, failed={"verified": False})


def _consistency(bundle: BaselineBundle, previous: Checkpoint, bgs: BgsClient | None) -> list[bytes] | None:
    """The consistency proof between `previous` and the bundle's checkpoint: from the BGS's tiles when
    given, else from the bundle when it holds one from `previous`'s size, else none."""
    if bundle.proof is None:
        return None
    current = peek_checkpoint(parse_proof(bundle.proof.encode()).checkpoint)
    sizes = sorted((previous.size, current.size))
    if bgs is not None:
        return bgs.consistency_proof(*sizes) if 0 < sizes[0] < sizes[1] else []
    if bundle.consistency is not None and bundle.consistency.size == previous.size:
        return bundle.consistency.proof()
    return None


def _verified_json(verified: VerifiedBaseline) -> dict[str, Any]:
    predicate = verified.document.statement.predicate
    return {
        "verified": True,
        "id": verified.document.id,
        "tee": predicate.measurements.tee,
        "name": predicate.name,
        "version": predicate.version,
        "signers": list(verified.signers),
        "validity": predicate.validity.model_dump(mode="json"),
        "log": {
            "origin": verified.checkpoint.origin,
            "index": verified.index,
            "tree_size": verified.checkpoint.size,
            "root_hash": b64.encode(verified.checkpoint.root_hash),
        },
        "consistent_with": None if verified.consistent_with is None else {"tree_size": verified.consistent_with.size},
        "reference_values": predicate.measurements.reference_values(verified.document.id).model_dump(mode="json"),
    }
