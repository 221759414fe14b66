"""`teeplane agent`: the in-pod side of attestation.

`attest` runs the challenge -> evidence -> token flow; `fetch-keys` then has TKS release the
workload's keys for that token and writes them into the keys volume (the init container's job).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey

from teeplane.attestation.agent import AgentResult, attest
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.models import WorkloadIdentity
from teeplane.errors import InputError, TeeplaneError
from teeplane.options import CaFile
from teeplane.remote import RemoteError
from teeplane.retry import retrying
from teeplane.tks.client import TksClient
from teeplane.tks.key_files import DEFAULT_MODE, parse_key_mappings, release_keys, write_key_files
from teeplane.tls import trusting

app = typer.Typer(help="The in-pod attestation agent.", no_args_is_help=True)

_Ras = Annotated[str, typer.Option(help="RAS base URL.")]
_Eps = Annotated[str, typer.Option(help="EPS base URL (the pod's evidence provider).")]
_Namespace = Annotated[str, typer.Option(help="Workload namespace.")]
_Name = Annotated[str, typer.Option(help="Workload name.")]
_Pod = Annotated[str | None, typer.Option(help="Pod name.")]
_JsonFlag = Annotated[bool, typer.Option("--json", help="Print a JSON object.")]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _fail(error: TeeplaneError, as_json: bool) -> typer.Exit:
    """Print the error (with every error a service listed, each naming where) and the exit to raise."""
    errors = (error.errors if isinstance(error, RemoteError) else []) or [error.to_dict()]
    typer.echo(json.dumps({"errors": errors}) if as_json else f"error {error}", err=not as_json)
    return typer.Exit(error.exit_code)


def _say_retrying(error: TeeplaneError, delay: float) -> None:
    typer.echo(f"retrying in {delay:.1f}s: {error}", err=True)


def _attest(ras: str, eps: str, workload: WorkloadIdentity, ca_file: Path | None) -> AgentResult:
    verify = trusting(ca_file)
    return attest(RasClient(ras, verify=verify), EpsClient(eps, verify=verify), workload)


@app.command("attest")
def attest_command(
    ras: _Ras,
    eps: _Eps,
    namespace: _Namespace,
    name: _Name,
    pod: _Pod = None,
    token_out: Annotated[Path | None, typer.Option(help="Write the token here (0600) instead of stdout.")] = None,
    key_out: Annotated[Path | None, typer.Option(help="Write the ephemeral TEE private key here (PEM, 0600).")] = None,
    ca_file: CaFile = None,
    as_json: _JsonFlag = False,
) -> None:
    """Attest this pod to RAS with a fresh key and print (or store) the attestation-result token."""
    try:
        result = _attest(ras, eps, WorkloadIdentity(namespace=namespace, name=name, pod=pod), ca_file)
    except TeeplaneError as error:
        raise _fail(error, as_json) from None
    if key_out is not None:
        pem = result.tee_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(key_out, pem)
    if token_out is not None:
        _write_private(token_out, result.token.encode())
    if as_json:
        typer.echo(json.dumps({"token": None if token_out else result.token, "tee_pubkey": result.tee_public_jwk}))
    elif token_out is None:
        typer.echo(result.token)


@app.command("fetch-keys")
def fetch_keys_command(
    ras: _Ras,
    tks: Annotated[str, typer.Option(help="TKS base URL; replicas comma-separated (tried in turn).")],
    eps: _Eps,
    namespace: _Namespace,
    name: _Name,
    out_dir: Annotated[Path, typer.Option(help="The keys volume: each key is written to OUT_DIR/PATH.")],
    key: Annotated[list[str], typer.Option(help="KEY_ID=PATH: a key to fetch and where to write it (repeatable).")],
    pod: _Pod = None,
    file_mode: Annotated[str, typer.Option(help="Octal mode of the key files.")] = f"{DEFAULT_MODE:o}",
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to keep retrying while RAS, TKS or the EPS are unavailable.")
    ] = 120.0,
    ca_file: CaFile = None,
    as_json: _JsonFlag = False,
) -> None:
    """Attest this pod, have TKS release each key to its TEE key, and write the keys into OUT_DIR.

    Every key is released before any is written: a refusal (exit 1) or bad input (exit 2) writes
    nothing. Unavailable services are retried for --timeout seconds.
    """
    try:
        wanted = parse_key_mappings(key)
        mode = _octal_mode(file_mode)
        workload = WorkloadIdentity(namespace=namespace, name=name, pod=pod)
        tks_client = TksClient(tks, verify=trusting(ca_file))

        def fetch() -> list[Path]:
            result = _attest(ras, eps, workload, ca_file)
            released = release_keys(tks_client, result.token, ECKey.import_key(result.tee_key), wanted)
            try:
                return write_key_files(out_dir, released, mode)
            except OSError as exc:
                raise InputError("input.unreadable", f"cannot write the keys into {out_dir}: {exc}") from None

        written = retrying(fetch, timeout, _say_retrying)
    except TeeplaneError as error:
        raise _fail(error, as_json) from None
    paths = {key_id: str(path) for key_id, path in zip(wanted, written, strict=True)}
    typer.echo(json.dumps({"keys": paths}) if as_json else "\n".join(f"{k} -> {p}" for k, p in paths.items()))


def _octal_mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise InputError("input.unreadable", f"--file-mode {text!r} is not an octal file mode such as 440")
    return mode
