"""Strict JSON schemas for kubeconform, offline, in the layout of its `{{ .ResourceKind }}{{ .KindSuffix }}.json`
schema-location template (as openapi2jsonschema --strict --expanded --kubernetes makes them):

    python3 hack/jsonschemas.py openapi SWAGGER_JSON OUT_DIR   # every kind of a Kubernetes swagger.json
    python3 hack/jsonschemas.py crd OUT_DIR CRD_YAML...        # every served version of each CRD

Strict: an object schema that lists properties refuses any other (additionalProperties: false),
unless it already says what else it takes or preserves unknown fields.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]
INT_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
# resource.Quantity is a string in the API but YAML authors write `cpu: 1` or `memory: 1.5`.
QUANTITY: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
QUANTITY_DEFINITION = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# Fields every object has, which a CRD's schema may leave out (the API server adds them).
OBJECT_FIELDS: Schema = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def file_name(group: str, version: str, kind: str) -> str:
    """The file kubeconform's `{{ .ResourceKind }}{{ .KindSuffix }}.json` names for a kind."""
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind}{suffix}.json".lower()


# Keywords whose value is a map of names to schemas, one schema, or a list of schemas.
SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
SCHEMA_ONE = ("items", "additionalProperties", "not")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "items")


def strict(schema: Any) -> Any:
    """A copy of `schema` where every object schema with properties refuses unknown ones."""
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string" or schema.get("x-kubernetes-int-or-string") is True:
        return INT_OR_STRING
    out: Schema = {}
    for key, value in schema.items():
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in SCHEMA_ONE and isinstance(value, dict):
            out[key] = strict(value)
        elif key in SCHEMA_LISTS and isinstance(value, list):
            out[key] = [strict(sub) for sub in value]
        else:
            out[key] = value
    open_ended = "additionalProperties" in out or out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not open_ended:
        out["additionalProperties"] = False
    return out


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield ref.removeprefix("#/definitions/")
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def closure(definitions: Schema, name: str) -> Schema:
    """The definitions `name` reaches through `$ref`s, itself included."""
    seen: Schema = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen[current] = definitions[current]
            pending.extend(_refs(definitions[current]))
    return seen


def from_openapi(swagger: Schema) -> dict[str, Schema]:
    """One standalone strict schema per kind of a Kubernetes swagger.json, by file name."""
    definitions = {name: strict(schema) for name, schema in swagger["definitions"].items()}
    definitions[QUANTITY_DEFINITION] = QUANTITY
    out: dict[str, Schema] = {}
    for name, schema in swagger["definitions"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            # Kinds every group has (DeleteOptions, WatchEvent) are not resources one writes.
            if gvk["kind"] in ("DeleteOptions", "WatchEvent") or gvk["version"] == "__internal":
                continue
            reached = closure(definitions, name)
            standalone = copy.deepcopy(reached.pop(name)) | {"definitions": reached}
            out[file_name(gvk["group"], gvk["version"], gvk["kind"])] = standalone
    return out


def from_crds(documents: Iterable[Any]) -> dict[str, Schema]:
    """One strict schema per served version of each CustomResourceDefinition, by file name."""
    out: dict[str, Schema] = {}
    for crd in documents:
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schema["properties"] = OBJECT_FIELDS | schema.get("properties", {})
            out[file_name(spec["group"], version["name"], spec["names"]["kind"])] = strict(schema)
    return out


def write(schemas: dict[str, Schema], out_dir: Path) -> None:
    """Write each schema to OUT_DIR/<file name>."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (out_dir / name).write_text(json.dumps(schema, indent=1, sort_keys=True))


def main(argv: list[str]) -> int:
    """Command line: `openapi SWAGGER OUT_DIR` or `crd OUT_DIR CRD...`."""
    if len(argv) == 3 and argv[0] == "openapi":
        write(from_openapi(json.loads(Path(argv[1]).read_text())), Path(argv[2]))
        return 0
    if len(argv) >= 3 and argv[0] == "crd":
        documents = [doc for path in argv[2:] for doc in yaml.safe_load_all(Path(path).read_text())]
        write(from_crds(documents), Path(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
