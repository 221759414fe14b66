"""`teeplane agent attest`: the in-pod challenge -> evidence -> token flow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization

from teeplane.attestation.agent import attest
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.models import WorkloadIdentity
from teeplane.errors import TeeplaneError

app = typer.Typer(help="The in-pod attestation agent.", no_args_is_help=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


@app.command("attest")
def attest_command(
    ras: Annotated[str, typer.Option(help="RAS base URL.")],
    eps: Annotated[str, typer.Option(help="EPS base URL (the pod's evidence provider).")],
    namespace: Annotated[str, typer.Option(help="Workload namespace.")],
    name: Annotated[str, typer.Option(help="Workload name.")],
    pod: Annotated[str | None, typer.Option(help="Pod name.")] = None,
    token_out: Annotated[Path | None, typer.Option(help="Write the token here (0600) instead of stdout.")] = None,
    key_out: Annotated[Path | None, typer.Option(help="Write the ephemeral TEE private key here (PEM, 0600).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Attest this pod to RAS with a fresh key and print (or store) the attestation-result token."""
    try:
        workload = WorkloadIdentity(namespace=namespace, name=name, pod=pod)
        result = attest(RasClient(ras), EpsClient(eps), workload)
    except TeeplaneError as error:
        typer.echo(json.dumps({"errors": [error.to_dict()]}) if as_json else f"error {error}", err=not as_json)
        raise typer.Exit(error.exit_code) from None
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
