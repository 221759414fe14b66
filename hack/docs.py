"""Generate the reference docs from their one source of truth (run through hack/docs.sh):

    python hack/docs.py [OUT_DIR]   # default: the repository's docs/

- `cli.md`: the `teeplane` command tree, by Typer's own `typer ... utils docs`;
- `api/<service>.openapi.json`: the OpenAPI documents of RAS, EPS, TKS (its KBS surface included)
  and BGS, from the applications' factory functions over temporary state, keys sorted;
- `operator.md`: the hand-written page from docs/, with its generated sections (between
  `<!-- generated:NAME -->` and `<!-- end:NAME -->`) refilled: the ConfidentialWorkload fields from
  the CRD schema, and the flags of `teeplane operator run` from the click command.

The output depends only on the code (the version string is the package's), so tests/test_docs.py
regenerates into a temporary directory and compares.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from teeplane.attestation.eps.app import create_eps_app
from teeplane.attestation.eps.provider import SimulatedTdxProvider
from teeplane.attestation.ras.app import create_ras_app
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.service import RasConfig, RemoteAttestationService
from teeplane.attestation.ras.store import RasStore
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.baseline.keys import generate_signer
from teeplane.baseline.service.app import create_bgs_app
from teeplane.baseline.service.registry import BaselineRegistry
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.cli import app as cli_app
from teeplane.operator.crd import crd
from teeplane.tks.app import create_tks_app
from teeplane.tks.kek import FileKek
from teeplane.tks.node import NodeConfig, TksNode

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
OPERATOR_PAGE = "operator.md"
SECTION = re.compile(r"(<!-- generated:(?P<name>[a-z-]+) -->\n).*?(<!-- end:(?P=name) -->)", re.DOTALL)
Schema = dict[str, Any]


def cli_markdown(out: Path) -> None:
    """Write the CLI reference with Typer's generator (a subprocess: it imports the app itself)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "--app",
            "app",
            "teeplane.cli",
            "utils",
            "docs",
            "--name",
            "teeplane",
            "--output",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONSAFEPATH": "1"},  # `-m` would put the working directory (operator/!) on sys.path
    )


def openapi_documents(state: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(service, OpenAPI document) for each HTTP service, built over temporary state in `state`."""
    now = datetime.now(UTC)
    store = RasStore(state / "ras" / "ras.db")
    try:
        yield "ras", create_ras_app(RemoteAttestationService(store, CollateralCache(), RasConfig()), []).openapi()
    finally:
        store.close()
    authority = SimulationAuthority.generate(now)
    eps = create_eps_app(SimulatedTdxProvider(boot_example_td(authority), bundle_json(authority, now)))
    yield "eps", eps.openapi()
    # A replica that is never started: it connects to etcd in its lifespan, which does not run here.
    node = TksNode(NodeConfig(["127.0.0.1:1"], "docs", "http://127.0.0.1:1", "iss", "aud"), FileKek(bytes(32)), dict)
    yield "tks", create_tks_app(node, [], ras_url="http://127.0.0.1:1").openapi()
    registry = BaselineRegistry.open(state / "bgs", LogSigner.generate("docs.teeplane.io/log"), generate_signer())
    try:
        yield "bgs", create_bgs_app(registry, []).openapi()
    finally:
        registry.close()


def _type(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"[]{_type(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'])}"
    return kind


def _limits(node: Schema) -> list[str]:
    words = {
        "enum": "one of {}",
        "minimum": ">= {}",
        "maximum": "<= {}",
        "minLength": "length >= {}",
        "maxLength": "length <= {}",
        "minItems": ">= {} items",
        "maxItems": "<= {} items",
        "minProperties": ">= {} entries",
        "maxProperties": "<= {} entries",
        "pattern": "matches `{}`",
    }
    out = []
    for key, word in words.items():
        if key in node:
            value = node[key]
            out.append(word.format(", ".join(f"`{v}`" for v in value) if key == "enum" else value))
    items = node.get("items")
    if items is not None and "properties" not in items and _limits(items):
        out.append(f"each item: {', '.join(_limits(items))}")
    out += [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
    return out


def _rows(node: Schema, path: str, required: bool) -> Iterator[list[str]]:
    if path:
        default = f"`{json.dumps(node['default'])}`" if "default" in node else ""
        described = [node["description"]] if node.get("description") and node.get("type") != "object" else []
        notes = "; ".join(described + _limits(node)).replace("|", "\\|")
        yield [f"`{path}`", _type(node), "yes" if required else "", default, notes]
    children = node.get("properties", {})
    if node.get("type") == "array" and "properties" in node.get("items", {}):
        node, path = node["items"], f"{path}[]"
        children = node["properties"]
    elif isinstance(node.get("additionalProperties"), dict) and "properties" in node["additionalProperties"]:
        node, path = node["additionalProperties"], f"{path}.*"
        children = node["properties"]
    for name, child in children.items():
        yield from _rows(child, f"{path}.{name}" if path else name, name in node.get("required", []))


def _table(header: list[str], rows: Iterator[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def fields_table() -> str:
    """The ConfidentialWorkload fields, from the CRD's structural schema (itself from operator/model.py)."""
    root = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    header = ["field", "type", "required", "default", "meaning and rules"]
    spec = _table(header, _rows(root["spec"], "spec", True))
    status = _table(header[:2] + header[3:], (r[:2] + r[3:] for r in _rows(root["status"], "status", False)))
    return f"{spec}\nStatus (written by the operator):\n\n{status}"


def command_flags(path: tuple[str, ...]) -> str:
    """The options of a `teeplane` subcommand as a table, from the command Typer builds."""
    command = typer.main.get_command(cli_app)
    for name in path:
        assert isinstance(command, TyperGroup)
        command = command.commands[name]
    rows = []
    for param in command.params:
        if not isinstance(param, TyperOption):
            continue
        names = " / ".join(f"`{flag}`" for flag in param.opts + param.secondary_opts)
        default = "" if param.default in (None, ()) else f"`{param.default}`"
        meaning = (param.help or "") + (f" (env `{param.envvar}`)" if param.envvar else "")
        rows.append([names, "yes" if param.required else "", default, meaning.replace("|", "\\|")])
    return _table(["flag", "required", "default", "meaning"], iter(rows))


GENERATED: dict[str, Callable[[], str]] = {
    "crd-fields": fields_table,
    "operator-run-flags": lambda: command_flags(("operator", "run")),
}


def fill(page: str) -> str:
    """`page` with each generated section's content replaced by a fresh one."""
    return SECTION.sub(lambda m: m.group(1) + "\n" + GENERATED[m.group("name")]() + "\n" + m.group(3), page)


def generate(out: Path) -> None:
    """Write every generated file under `out` (a docs directory)."""
    (out / "api").mkdir(parents=True, exist_ok=True)
    cli_markdown(out / "cli.md")
    with tempfile.TemporaryDirectory(prefix="teeplane-docs-") as state:
        for name, document in openapi_documents(Path(state)):
            text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            (out / "api" / f"{name}.openapi.json").write_text(text)
    (out / OPERATOR_PAGE).write_text(fill((DOCS / OPERATOR_PAGE).read_text()))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS)
