"""The manifest digest of a container image stored as an OCI image layout directory.

An OCI image layout (OCI image spec, image-layout.md) holds `oci-layout`, `index.json` and the
content-addressed blobs under `blobs/<algorithm>/<hex>`. The image's identity is the digest of
its manifest, which `index.json` lists under `manifests[].digest`; a runtime pulling the image
by digest resolves to exactly that. The manifest blob is read and re-hashed, so a layout whose
index names a digest its blob does not have is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from teeplane.baseline.errors import BuildInputError, Code

REF_NAME = "org.opencontainers.image.ref.name"
_DIGEST = re.compile(r"(sha256):([0-9a-f]{64})|(sha512):([0-9a-f]{128})")


def layout_manifest_digest(directory: Path, ref_name: str | None = None, *, where: str = "oci_layout") -> str:
    """The digest ("sha256:<hex>") of the manifest `index.json` names (the one tagged `ref_name`, if given)."""
    index = _read_json(directory / "index.json", where)
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
        raise _malformed(f"{directory}/index.json has no manifests list", where)
    if ref_name is not None:
        manifests = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == ref_name]
    if len(manifests) != 1:
        which = f"tagged {ref_name!r}" if ref_name is not None else "in all"
        raise _malformed(f"{directory}/index.json lists {len(manifests)} manifests {which}, not exactly one", where)
    digest = manifests[0].get("digest")
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise _malformed(f"{directory}/index.json: {digest!r} is not a sha256/sha512 digest", where)
    algorithm, hexdigest = (match[1], match[2]) if match[1] else (match[3], match[4])
    blob = directory / "blobs" / algorithm / hexdigest
    try:
        content = blob.read_bytes()
    except OSError as e:
        raise _malformed(f"the manifest blob {blob} cannot be read: {e.strerror}", where) from None
    if hashlib.new(algorithm, content).hexdigest() != hexdigest:
        raise _malformed(f"the manifest blob {blob} does not have the digest index.json names", where)
    return str(digest)


def _read_json(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        raise _malformed(f"{path} cannot be read: {e.strerror}", where) from None
    except ValueError as e:
        raise _malformed(f"{path} is not JSON: {e}", where) from None


def _malformed(message: str, where: str) -> BuildInputError:
    return BuildInputError(Code.OCI_LAYOUT_MALFORMED, message, where=where)
