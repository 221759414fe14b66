"""Subtrees of a Merkle tree, as Merkle Tree Certificates define them (draft-ietf-plants-merkle-tree-certs §4).

A subtree [start, end) is valid when 0 <= start < end and start is a multiple of the smallest power
of two >= end - start; its hash is MTH(D[start:end]). A subtree inclusion proof is the RFC 9162
inclusion proof of a leaf within the subtree; a subtree consistency proof shows a subtree hash to
be that subtree of a tree with a given root. With start = 0 both are the RFC 9162 proofs.
"""

from __future__ import annotations

from collections.abc import Sequence

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog.merkle import (
    EMPTY_ROOT,
    HashReader,
    check_hashes,
    inclusion_proof,
    node_hash,
    range_hash,
    split_point,
    verify_inclusion,
)


def is_valid_subtree(start: int, end: int) -> bool:
    """0 <= start < end and start is a multiple of BIT_CEIL(end - start)."""
    return 0 <= start < end and start % (1 << (end - start - 1).bit_length()) == 0


class _Offset:
    """The complete subtrees of D[start:] as a tree of their own (start aligned to every level used)."""

    def __init__(self, reader: HashReader, start: int) -> None:
        self._reader, self._start = reader, start

    def node(self, level: int, index: int) -> bytes:
        return self._reader.node(level, index + (self._start >> level))


def subtree_inclusion_proof(index: int, start: int, end: int, reader: HashReader) -> list[bytes]:
    """The inclusion proof of leaf `index` in the subtree [start, end)."""
    _require_valid(start, end)
    if not start <= index < end:
        raise LogInputError(Code.MERKLE_BAD_SIZE, f"leaf {index} is outside the subtree [{start}, {end})")
    return inclusion_proof(index - start, end - start, _Offset(reader, start))


def verify_subtree_inclusion(
    index: int, start: int, end: int, leaf: bytes, proof: Sequence[bytes], subtree_hash: bytes
) -> None:
    """Check that `proof` proves `leaf` at `index` in the subtree [start, end) with `subtree_hash`."""
    if not is_valid_subtree(start, end) or not start <= index < end:
        raise LogVerificationError(Code.MERKLE_BAD_SIZE, f"leaf {index} is not in a valid subtree [{start}, {end})")
    verify_inclusion(index - start, end - start, leaf, proof, subtree_hash)


def subtree_consistency_proof(start: int, end: int, size: int, reader: HashReader) -> list[bytes]:
    """SUBTREE_PROOF(start, end, D[size]) of the draft (§4.4.1): empty when [start, end) is the whole tree."""
    _require_valid(start, end)
    if end > size:
        raise LogInputError(Code.MERKLE_BAD_SIZE, f"the subtree [{start}, {end}) is not inside a tree of size {size}")
    path = []
    lo, hi, known = 0, size, True
    while (start, end) != (lo, hi):
        k = split_point(hi - lo)
        if end <= lo + k:
            path.append(range_hash(lo + k, hi, reader))
            hi = lo + k
        else:
            path.append(reader.node(k.bit_length() - 1, lo // k))
            if start < lo + k:  # the subtree straddles the split (start == lo): its right part is not known
                start, known = lo + k, False
            lo += k
    if not known:
        path.append(range_hash(lo, hi, reader))
    path.reverse()
    return path


def verify_subtree_consistency(
    start: int, end: int, size: int, proof: Sequence[bytes], subtree_hash: bytes, root_hash: bytes
) -> None:
    """Check that `proof` proves `subtree_hash` the hash of [start, end) in the tree of `size` and `root_hash`.

    Follows the draft's verification (§4.4.3) step by step. As in the transparency-dev test vectors,
    an empty range [start, start) inside the tree is accepted with an empty proof and the hash of
    the empty list, whatever the tree's root.
    """
    check_hashes(proof)
    if start == end and 0 <= start <= size:
        if proof:
            raise LogVerificationError(Code.MERKLE_PROOF_LENGTH, "an empty subtree takes an empty proof")
        if subtree_hash != EMPTY_ROOT:
            raise LogVerificationError(Code.MERKLE_ROOT_MISMATCH, "an empty subtree hashes to SHA-256 of nothing")
        return
    if not is_valid_subtree(start, end) or end > size:
        raise LogVerificationError(
            Code.MERKLE_BAD_SIZE, f"[{start}, {end}) is not a valid subtree of a tree of size {size}"
        )
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if fn == sn:
        fr = sr = subtree_hash
        rest = proof
    elif proof:
        fr = sr = proof[0]
        rest = proof[1:]
    else:
        raise LogVerificationError(Code.MERKLE_PROOF_LENGTH, "the proof is empty")
    for c in rest:
        if tn == 0:
            raise LogVerificationError(Code.MERKLE_PROOF_LENGTH, f"a proof of {len(proof)} hashes is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn != 0:
        raise LogVerificationError(Code.MERKLE_PROOF_LENGTH, f"a proof of {len(proof)} hashes is too short")
    if fr != subtree_hash:
        raise LogVerificationError(Code.MERKLE_ROOT_MISMATCH, "the proof leads to another subtree hash")
    if sr != root_hash:
        raise LogVerificationError(Code.MERKLE_ROOT_MISMATCH, "the proof leads to another root hash")


def _require_valid(start: int, end: int) -> None:
    if not is_valid_subtree(start, end):
        raise LogInputError(Code.MERKLE_BAD_SIZE, f"[{start}, {end}) is not a valid subtree")
