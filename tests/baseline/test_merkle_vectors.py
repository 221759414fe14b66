"""The transparency-dev/merkle proof vectors (../shared/testdata/merkle, read in place).

Every vector's verdict is ours, and the proofs of the happy-path vectors are exactly the ones we
generate over the same leaves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from teeplane.baseline.errors import LogVerificationError
from teeplane.baseline.tlog import merkle, subtree

#: The leaves every vector's tree is built from (RFC 6962 test data), from the vector's `start` on.
LEAVES = [b"", b"\x00", b"\x10", b" !", b"01", b"@ABC", bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
Vector = dict[str, Any]


def _b64(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def _proof(v: Vector) -> list[bytes]:
    return [_b64(h) for h in v["proof"] or []]


VERIFY: dict[str, Callable[[Vector], None]] = {
    "inclusion": lambda v: merkle.verify_inclusion(
        v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), _proof(v), _b64(v["root"])
    ),
    "consistency": lambda v: merkle.verify_consistency(
        v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"])
    ),
    "subtreeinclusion": lambda v: subtree.verify_subtree_inclusion(
        v["leafIdx"], v["start"], v["end"], _b64(v["leafHash"]), _proof(v), _b64(v["root"])
    ),
    "subtreeconsistency": lambda v: subtree.verify_subtree_consistency(
        v["start"], v["end"], v["size"], _proof(v), _b64(v["root1"]), _b64(v["root2"])
    ),
}
EXPECTED_COUNTS = {"inclusion": 98, "consistency": 98, "subtreeinclusion": 204, "subtreeconsistency": 118}


@pytest.mark.parametrize("family", VERIFY)
def test_every_vector_agrees(merkle_vectors: Path, family: str) -> None:
    files = sorted((merkle_vectors / family).rglob("*.json"))
    assert len(files) == EXPECTED_COUNTS[family]
    disagreements = []
    for path in files:
        vector = json.loads(path.read_text())
        try:
            VERIFY[family](vector)
            error = None
        except LogVerificationError as e:
            error = e
        if (error is not None) != vector["wantErr"]:
            disagreements.append(f"{path.relative_to(merkle_vectors)}: want error {vector['wantErr']}, got {error}")
    assert not disagreements, "\n".join(disagreements)


def _tree(start: int, end: int) -> merkle.MemoryTree:
    """The vectors' leaves placed from `start` on, after filler leaves."""
    fill = [merkle.leaf_hash(b"filler %d" % i) for i in range(start)]
    return merkle.MemoryTree(fill + [merkle.leaf_hash(d) for d in LEAVES[: end - start]])


GENERATE: dict[str, Callable[[Vector], tuple[list[bytes], bytes, bytes]]] = {
    "inclusion": lambda v: (
        merkle.inclusion_proof(v["leafIdx"], v["treeSize"], t := _tree(0, v["treeSize"])),
        t.root(),
        _b64(v["root"]),
    ),
    "consistency": lambda v: (
        merkle.consistency_proof(v["size1"], v["size2"], t := _tree(0, v["size2"])),
        t.root(),
        _b64(v["root2"]),
    ),
    "subtreeinclusion": lambda v: (
        subtree.subtree_inclusion_proof(v["leafIdx"], v["start"], v["end"], t := _tree(v["start"], v["end"])),
        merkle.range_hash(v["start"], v["end"], t),
        _b64(v["root"]),
    ),
    "subtreeconsistency": lambda v: (
        subtree.subtree_consistency_proof(v["start"], v["end"], v["size"], t := _tree(v["start"], v["size"])),
        t.root(),
        _b64(v["root2"]),
    ),
}


@pytest.mark.parametrize("family", GENERATE)
def test_happy_path_proofs_are_the_ones_we_generate(merkle_vectors: Path, family: str) -> None:
    files = sorted((merkle_vectors / family).glob("*/happy-path*.json"))
    assert files
    for path in files:
        vector = json.loads(path.read_text())
        proof, root, want_root = GENERATE[family](vector)
        assert root == want_root, path
        assert proof == _proof(vector), path
