"""Released keys as files: what the agent writes into the pod's in-memory keys volume.

A workload reads key `ID` at the path its ConfidentialWorkload names (`keys: {ID: PATH}`), relative to
the volume. Paths are plain relative segments, so nothing can be written outside the volume. Files
are written whole (a temporary file renamed into place), so a reader never sees a partial key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from joserfc.jwk import ECKey, RSAKey

from teeplane.errors import InputError
from teeplane.tks.client import TksClient
from teeplane.tks.jwe import open_for_tee
from teeplane.tks.models import KEY_ID

#: A relative path of plain segments inside the keys volume, no `.` or `..` segment.
KEY_PATH = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
#: Owner and group may read a key file; nobody may write it.
DEFAULT_MODE = 0o440


@dataclass(frozen=True)
class KeyFile:
    """A released key and the path (relative to the keys volume) it is written to."""

    key_id: str
    path: str
    secret: bytes = field(repr=False)


def parse_key_mappings(items: Iterable[str]) -> dict[str, str]:
    """`ID=PATH` options as {key ID: path}, or InputError naming the bad item."""
    wanted: dict[str, str] = {}
    for item in items:
        key_id, sep, path = item.partition("=")
        if not sep or not re.fullmatch(KEY_ID, key_id):
            raise InputError("input.unreadable", f"--key {item!r}: expected KEY_ID=PATH with a TKS key ID")
        if not re.fullmatch(KEY_PATH, path):
            raise InputError("input.unreadable", f"--key {item!r}: the path must be relative, without . or ..")
        if key_id in wanted or path in wanted.values():
            raise InputError("input.unreadable", f"--key {item!r}: each key and each path may appear once")
        wanted[key_id] = path
    return wanted


def release_keys(tks: TksClient, token: str, tee_key: ECKey | RSAKey, wanted: Mapping[str, str]) -> list[KeyFile]:
    """Each wanted key released by TKS for `token` and unwrapped with the TEE's private key."""
    return [KeyFile(key_id, path, open_for_tee(tks.release(key_id, token), tee_key)) for key_id, path in wanted.items()]


def write_key_files(out_dir: Path, files: Iterable[KeyFile], mode: int = DEFAULT_MODE) -> list[Path]:
    """Write each key to `out_dir/path` (parents made as needed), atomically; the paths written."""
    written = []
    for key_file in files:
        target = out_dir / key_file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_file.secret)
            out.flush()
            os.fchmod(out.fileno(), mode)
        os.replace(partial, target)
        written.append(target)
    return written
