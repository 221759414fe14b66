"""C2SP checkpoints: the note text format, strict parsing, origins, and consistency between two."""

from __future__ import annotations

import pytest

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog import merkle
from teeplane.baseline.tlog.checkpoint import (
    Checkpoint,
    open_checkpoint,
    parse_checkpoint,
    verify_checkpoints_consistent,
)
from teeplane.baseline.tlog.note import Signer

ROOT = bytes(range(32))
ROOT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ORIGIN = "example.com/behind-the-sofa"


def test_text_and_parse_round_trip() -> None:
    checkpoint = Checkpoint(ORIGIN, 20852163, ROOT, ("ext one", "ext two"))
    text = checkpoint.text()
    assert text == f"{ORIGIN}\n20852163\n{ROOT_B64}\next one\next two\n"
    assert parse_checkpoint(text) == checkpoint
    assert parse_checkpoint(f"{ORIGIN}\n0\n{ROOT_B64}\n") == Checkpoint(ORIGIN, 0, ROOT)


@pytest.mark.parametrize(
    "text",
    [
        f"{ORIGIN}\n20852163\n{ROOT_B64}",  # no final newline
        f"{ORIGIN}\n20852163\n",  # no root
        f"\n20852163\n{ROOT_B64}\n",  # empty origin
        f"{ORIGIN}\n020852163\n{ROOT_B64}\n",  # leading zero
        f"{ORIGIN}\n+5\n{ROOT_B64}\n",
        f"{ORIGIN}\n18446744073709551616\n{ROOT_B64}\n",  # 2**64
        f"{ORIGIN}\n5\n{ROOT_B64[:-4]}\n",  # 29-byte root
        f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n",  # unpadded
        f"{ORIGIN}\n5\n{ROOT_B64}\n\n",  # empty extension line
        f"{ORIGIN}\t\n5\n{ROOT_B64}\n",  # a control character
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(LogInputError, match=Code.CHECKPOINT_MALFORMED):
        parse_checkpoint(text)


def test_a_checkpoint_cannot_be_made_with_an_impossible_body() -> None:
    for bad in (Checkpoint("two\nlines", 1, ROOT), Checkpoint(ORIGIN, -1, ROOT), Checkpoint(ORIGIN, 1, ROOT[:31])):
        with pytest.raises(LogInputError, match=Code.CHECKPOINT_MALFORMED):
            bad.text()


def test_signed_checkpoints_are_opened_for_their_origin_only() -> None:
    signer = Signer.generate(ORIGIN)
    note = Checkpoint(ORIGIN, 7, ROOT).sign(signer)
    assert open_checkpoint(note, ORIGIN, [signer.verifier]) == Checkpoint(ORIGIN, 7, ROOT)
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_ORIGIN_MISMATCH):
        open_checkpoint(Checkpoint("example.com/other", 7, ROOT).sign(signer), ORIGIN, [signer.verifier])


def test_consistency_between_checkpoints() -> None:
    leaves = [merkle.leaf_hash(b"%d" % i) for i in range(9)]
    tree = merkle.MemoryTree(leaves)
    empty, at_5, at_9 = (Checkpoint(ORIGIN, n, tree.root(n)) for n in (0, 5, 9))
    verify_checkpoints_consistent(at_5, at_9, merkle.consistency_proof(5, 9, tree))
    verify_checkpoints_consistent(empty, at_9, [])
    verify_checkpoints_consistent(at_9, at_9, [])
    forked = Checkpoint(ORIGIN, 9, merkle.root([*leaves[:8], merkle.leaf_hash(b"other")]))
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_INCONSISTENT):
        verify_checkpoints_consistent(at_9, forked, [])
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_INCONSISTENT):
        verify_checkpoints_consistent(at_5, forked, merkle.consistency_proof(5, 9, tree))
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_INCONSISTENT):
        verify_checkpoints_consistent(Checkpoint(ORIGIN, 0, ROOT), at_9, [])
    with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
        verify_checkpoints_consistent(at_5, at_9, merkle.consistency_proof(5, 9, tree)[:-1])
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_ORIGIN_MISMATCH):
        verify_checkpoints_consistent(at_5, Checkpoint("example.com/other", 9, at_9.root_hash), [])
