"""c2sp.org/tlog-proof files: format, strict parsing, offline verification."""

from __future__ import annotations

import pytest

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog import merkle
from teeplane.baseline.tlog.checkpoint import Checkpoint
from teeplane.baseline.tlog.note import Signer
from teeplane.baseline.tlog.proof import TlogProof, format_proof, parse_proof, verify_proof

ORIGIN = "example.com/fancylog"
ENTRIES = [b"entry %d" % i for i in range(7)]
TREE = merkle.MemoryTree(merkle.leaf_hash(e) for e in ENTRIES)
SIGNER = Signer.generate(ORIGIN)
CHECKPOINT = Checkpoint(ORIGIN, 7, TREE.root()).sign(SIGNER)


def make(index: int, extra: bytes | None = None) -> bytes:
    return format_proof(TlogProof(index, tuple(merkle.inclusion_proof(index, 7, TREE)), CHECKPOINT, extra))


def test_the_format() -> None:
    data = make(3, extra=b"context")
    lines = data.decode().split("\n")
    assert lines[:3] == ["c2sp.org/tlog-proof@v1", "extra Y29udGV4dA==", "index 3"]
    assert data.endswith(b"\n\n" + CHECKPOINT)
    parsed = parse_proof(data)
    assert (parsed.index, parsed.extra, parsed.checkpoint) == (3, b"context", CHECKPOINT)
    assert format_proof(parsed) == data


@pytest.mark.parametrize("index", range(7))
def test_proofs_verify_offline(index: int) -> None:
    verified = verify_proof(make(index), ENTRIES[index], ORIGIN, [SIGNER.verifier])
    assert (verified.index, verified.checkpoint.size, verified.extra) == (index, 7, None)


def test_a_proof_for_other_bytes_another_index_or_log_is_refused() -> None:
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        verify_proof(make(2), ENTRIES[3], ORIGIN, [SIGNER.verifier])
    moved = make(2).replace(b"index 2", b"index 3")
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        verify_proof(moved, ENTRIES[2], ORIGIN, [SIGNER.verifier])
    with pytest.raises(LogVerificationError, match=Code.MERKLE_BAD_SIZE):
        verify_proof(make(2).replace(b"index 2", b"index 7"), ENTRIES[2], ORIGIN, [SIGNER.verifier])
    with pytest.raises(LogVerificationError, match=Code.NOTE_NO_TRUSTED_SIGNATURE):
        verify_proof(make(2), ENTRIES[2], ORIGIN, [Signer.generate(ORIGIN).verifier])
    with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_ORIGIN_MISMATCH):
        verify_proof(make(2), ENTRIES[2], "example.com/other", [SIGNER.verifier])


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.replace(b"@v1", b"@v2"),
        lambda d: d.replace(b"index 2", b"index 02"),
        lambda d: d.replace(b"index 2", b"index: 2"),
        lambda d: d.replace(b"index 2\n", b""),
        lambda d: d.replace(b"index 2\n", b"index 2\nnot base64!\n"),
        lambda d: d.replace(b"index 2\n", b"index 2\nAAAA\n"),  # a 3-byte hash
        lambda d: d.replace(b"\n\n", b"\n"),  # no blank line before the checkpoint
        lambda d: d.split(b"\n\n")[0] + b"\n\n",  # no checkpoint
        lambda d: d.replace(b"index 2\n", b"extra *\nindex 2\n"),
        lambda d: d.replace(b"index 2\n", b"index 2\n" + b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n" * 65),
    ],
)
def test_malformed_proofs_are_refused(change: object) -> None:
    assert callable(change)
    with pytest.raises(LogInputError, match=Code.TLOG_PROOF_MALFORMED):
        parse_proof(change(make(2)))
