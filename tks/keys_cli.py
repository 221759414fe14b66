"""`teeplane keys`: manage keys and their release policies on a Trusted Key Service.

Like Vault's CLI, the address and the admin token come from options or the environment
(`TEEPLANE_TKS_URL`, `TEEPLANE_TKS_TOKEN`). Exit codes: 0 done, 1 refused (401/403), 2 bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from teeplane.attestation.binding import b64url_encode
from teeplane.errors import InputError, TeeplaneError
from teeplane.io import read_file
from teeplane.options import CaFile
from teeplane.remote import first_error
from teeplane.tks.client import TksClient
from teeplane.tks.models import CreateKey, KeyKind, KeyMetadata, ReleasePolicy
from teeplane.tls import trusting

app = typer.Typer(help="Manage keys on a Trusted Key Service.", no_args_is_help=True)

_Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_KeyId = Annotated[str, typer.Argument(help="The key's ID.")]
_SecretFile = Annotated[
    Path | None, typer.Option(help="Store this file's bytes as an opaque secret (default: a generated AES-256 key).")
]


@app.callback()
def _connect(
    context: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="TEEPLANE_TKS_URL", help="TKS base URL; replicas comma-separated.")
    ] = "http://127.0.0.1:8600",
    token: Annotated[
        str | None, typer.Option(envvar="TEEPLANE_TKS_TOKEN", help="Admin bearer token.", show_default=False)
    ] = None,
    token_file: Annotated[Path | None, typer.Option(help="Read the admin token from this file.")] = None,
    ca_file: CaFile = None,
) -> None:
    """Connect to TKS at --url with the admin token."""

    def connect() -> TksClient:  # in the command, whose errors are reported
        admin_token = read_file(token_file, "admin token file").decode().strip() if token_file is not None else token
        return TksClient(url, admin_token=admin_token, verify=trusting(ca_file))

    context.obj = connect


def _policy(
    policy_file: Path | None,
    fields: dict[str, Any],
) -> ReleasePolicy:
    """The policy the options describe: the file's, with any option given overriding it."""
    base: dict[str, Any] = {}
    if policy_file is not None:
        try:
            base = json.loads(read_file(policy_file, "policy file"))
        except ValueError:
            raise InputError("keys.policy_invalid", f"{policy_file} is not JSON", where="--policy") from None
        if not isinstance(base, dict):
            raise InputError("keys.policy_invalid", "a policy is a JSON object", where="--policy")
    base |= {name: value for name, value in fields.items() if value}
    try:
        return ReleasePolicy.model_validate(base)
    except ValidationError as exc:
        raise InputError("keys.policy_invalid", first_error(exc), where="policy") from None


def _client(context: typer.Context) -> TksClient:
    connect: Callable[[], TksClient] = context.obj
    return connect()


def _show(meta: KeyMetadata, as_json: bool) -> None:
    if as_json:
        typer.echo(meta.model_dump_json(indent=2))
        return
    table = Table(title=f"key {meta.id}", show_header=False)
    table.add_row("kind", meta.kind.value)
    table.add_row("created", meta.created_at.isoformat())
    table.add_row("versions", ", ".join(f"{v.version} ({v.created_at:%Y-%m-%d %H:%M:%S})" for v in meta.versions))
    for name, value in meta.policy.model_dump(mode="json").items():
        table.add_row(f"policy.{name}", ", ".join(value) if isinstance(value, list) else json.dumps(value))
    Console().print(table)


def _run(context: typer.Context, as_json: bool, action: Callable[[TksClient], KeyMetadata | None]) -> None:
    """Run `action` with the client; show the key it returns; a typed error becomes its exit code."""
    try:
        meta = action(_client(context))
    except TeeplaneError as error:
        if as_json:
            typer.echo(json.dumps({"errors": [error.to_dict()]}, indent=2))
        else:
            Console(stderr=True).print(f"[red]error[/] {error}", highlight=False)
        raise typer.Exit(error.exit_code) from None
    if meta is not None:
        _show(meta, as_json)


def _secret(path: Path | None) -> str | None:
    return b64url_encode(read_file(path, "secret file")) if path is not None else None


def _create_or_set_policy(
    context: typer.Context,
    key_id: _KeyId,
    policy_file: Annotated[
        Path | None, typer.Option("--policy", help="Release policy as JSON (the options below override it).")
    ] = None,
    workload: Annotated[list[str] | None, typer.Option(help="namespace/name allowed to receive it (repeat).")] = None,
    baseline: Annotated[list[str] | None, typer.Option(help="Accepted baseline ID (repeat).")] = None,
    any_baseline: Annotated[
        bool, typer.Option("--any-baseline", help="Accept any baseline (measurements must match one).")
    ] = False,
    tee: Annotated[list[str] | None, typer.Option(help="Accepted TEE type: tdx, snp (repeat).")] = None,
    tcb_status: Annotated[
        list[str] | None, typer.Option(help="Accepted TCB status (repeat; default UpToDate).")
    ] = None,
    allow_simulated: Annotated[
        bool, typer.Option("--allow-simulated", help="Release to simulated TEEs (development only).")
    ] = False,
    require_latest: Annotated[bool, typer.Option("--require-latest", help="Release only the latest version.")] = False,
    secret_file: _SecretFile = None,
    as_json: _Json = False,
) -> None:
    fields = {
        "workloads": workload,
        "baselines": baseline,
        "any_baseline": any_baseline,
        "tee_types": tee,
        "tcb_statuses": tcb_status,
        "allow_simulated": allow_simulated,
        "require_latest_version": require_latest,
    }
    creating = context.info_name == "create"

    def action(client: TksClient) -> KeyMetadata:
        if not creating:
            if secret_file is not None:
                raise InputError("keys.option_invalid", "--secret-file applies to create and rotate")
            if policy_file is None and not any(fields.values()):
                return client.show(key_id)
            return client.set_policy(key_id, _policy(policy_file, fields))
        value = _secret(secret_file)
        kind = KeyKind.SECRET if value is not None else KeyKind.AES256
        try:
            request = CreateKey(id=key_id, kind=kind, value=value, policy=_policy(policy_file, fields))
        except ValidationError as exc:
            raise InputError("keys.key_invalid", first_error(exc), where="id") from None
        return client.create(request)

    _run(context, as_json, action)


app.command("create", help="Create a key (generated AES-256, or --secret-file) with its release policy.")(
    _create_or_set_policy
)
app.command("policy", help="Show a key's release policy, or replace it with the one the options give.")(
    _create_or_set_policy
)


@app.command("list")
def list_command(context: typer.Context, as_json: _Json = False) -> None:
    """List every key's ID."""
    keys: list[str] = []

    def action(client: TksClient) -> None:
        keys.extend(client.list())

    _run(context, as_json, action)
    typer.echo(json.dumps({"keys": keys}, indent=2) if as_json else "\n".join(keys))


@app.command("show")
def show_command(context: typer.Context, key_id: _KeyId, as_json: _Json = False) -> None:
    """Show a key: versions and release policy (never its material)."""
    _run(context, as_json, lambda client: client.show(key_id))


@app.command("rotate")
def rotate_command(
    context: typer.Context, key_id: _KeyId, secret_file: _SecretFile = None, as_json: _Json = False
) -> None:
    """Add a new version (generated, or the new secret); releases default to the latest."""
    _run(context, as_json, lambda client: client.rotate(key_id, _secret(secret_file)))


@app.command("delete")
def delete_command(context: typer.Context, key_id: _KeyId, as_json: _Json = False) -> None:
    """Delete a key and all its versions."""
    _run(context, as_json, lambda client: client.delete(key_id))
    typer.echo(json.dumps({"deleted": key_id}) if as_json else f"deleted {key_id}")
