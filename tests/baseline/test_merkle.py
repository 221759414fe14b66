"""Merkle proofs over random trees: generation matches the RFC's recursive definitions, proofs verify,
and any changed bit, index or size is refused with a typed error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog import merkle, subtree

PROPERTY = settings(max_examples=300, deadline=None)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, recursively, over leaf hashes."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = merkle.split_point(len(leaves))
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    k = merkle.split_point(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], known: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if known else [mth(leaves)]
    k = merkle.split_point(n)
    if m <= k:
        return [*subproof(m, leaves[:k], known), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def hashes(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8 % len(out)] ^= 1 << bit % 8
    return bytes(out)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=300))
    return hashes(n), draw(st.integers(min_value=0, max_value=n - 1))


@st.composite
def tree_and_sizes(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=300))
    return hashes(n), draw(st.integers(min_value=1, max_value=n))


@PROPERTY
@given(tree_and_index(), st.integers(min_value=0, max_value=255))
def test_inclusion_proofs_verify_and_every_bit_counts(case: tuple[list[bytes], int], bit: int) -> None:
    leaves, index = case
    tree, size, root = merkle.MemoryTree(leaves), len(leaves), mth(leaves)
    assert merkle.root(leaves) == tree.root() == root
    proof = merkle.inclusion_proof(index, size, tree)
    assert proof == path(index, leaves)
    merkle.verify_inclusion(index, size, leaves[index], proof, root)
    for i in range(len(proof)):
        with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
            merkle.verify_inclusion(
                index, size, leaves[index], [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]], root
            )
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        merkle.verify_inclusion(index, size, flip(leaves[index], bit), proof, root)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        merkle.verify_inclusion(index, size, leaves[index], proof, flip(root, bit))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
        merkle.verify_inclusion(index, size, leaves[index], [*proof, root], root)
    if proof:
        with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
            merkle.verify_inclusion(index, size, leaves[index], proof[:-1], root)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_BAD_SIZE):
        merkle.verify_inclusion(size, size, leaves[index], proof, root)


@PROPERTY
@given(tree_and_sizes(), st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=255))
def test_consistency_proofs_verify_and_every_bit_counts(case: tuple[list[bytes], int], grow: int, bit: int) -> None:
    leaves, size1 = case
    size2 = min(len(leaves), size1 + grow - 1)
    tree = merkle.MemoryTree(leaves)
    root1, root2 = mth(leaves[:size1]), mth(leaves[:size2])
    proof = merkle.consistency_proof(size1, size2, tree)
    assert proof == ([] if size1 == size2 else subproof(size1, leaves[:size2], True))
    merkle.verify_consistency(size1, size2, proof, root1, root2)
    for i in range(len(proof)):
        with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
            merkle.verify_consistency(size1, size2, [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]], root1, root2)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        merkle.verify_consistency(size1, size2, proof, flip(root1, bit), root2)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        merkle.verify_consistency(size1, size2, proof, root1, flip(root2, bit))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
        merkle.verify_consistency(size1, size2, [*proof, root1], root1, root2)
    if size1 < size2 and len(proof) > 1:
        with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
            merkle.verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_BAD_SIZE):
        merkle.verify_consistency(size2 + 1, size2, proof, root1, root2)


@st.composite
def tree_and_subtree(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    size = draw(st.integers(min_value=1, max_value=300))
    width = draw(st.integers(min_value=1, max_value=size))
    align = 1 << (width - 1).bit_length()  # a subtree starts at a multiple of BIT_CEIL(width)
    start = align * draw(st.integers(min_value=0, max_value=(size - width) // align))
    return hashes(size), start, start + width


@PROPERTY
@given(tree_and_subtree(), st.data(), st.integers(min_value=0, max_value=255))
def test_subtree_proofs_verify_and_every_bit_counts(
    case: tuple[list[bytes], int, int], data: st.DataObject, bit: int
) -> None:
    leaves, start, end = case
    assert subtree.is_valid_subtree(start, end)
    tree, size = merkle.MemoryTree(leaves), len(leaves)
    sub_root, root = mth(leaves[start:end]), mth(leaves)
    assert merkle.range_hash(start, end, tree) == sub_root
    index = data.draw(st.integers(min_value=start, max_value=end - 1))
    proof = subtree.subtree_inclusion_proof(index, start, end, tree)
    assert proof == path(index - start, leaves[start:end])
    subtree.verify_subtree_inclusion(index, start, end, leaves[index], proof, sub_root)
    consistency = subtree.subtree_consistency_proof(start, end, size, tree)
    if start == 0:
        assert consistency == merkle.consistency_proof(end, size, tree)
    subtree.verify_subtree_consistency(start, end, size, consistency, sub_root, root)
    for i in range(len(consistency)):
        changed = [*consistency[:i], flip(consistency[i], bit), *consistency[i + 1 :]]
        with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
            subtree.verify_subtree_consistency(start, end, size, changed, sub_root, root)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        subtree.verify_subtree_consistency(start, end, size, consistency, flip(sub_root, bit), root)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        subtree.verify_subtree_consistency(start, end, size, consistency, sub_root, flip(root, bit))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
        subtree.verify_subtree_consistency(start, end, size, [*consistency, root], sub_root, root)


def test_subtree_validity() -> None:
    assert subtree.is_valid_subtree(0, 7) and subtree.is_valid_subtree(8, 13) and subtree.is_valid_subtree(6, 7)
    assert (
        not subtree.is_valid_subtree(2, 5) and not subtree.is_valid_subtree(3, 3) and not subtree.is_valid_subtree(1, 3)
    )
    with pytest.raises(LogInputError, match=Code.MERKLE_BAD_SIZE):
        subtree.subtree_consistency_proof(2, 6, 8, merkle.MemoryTree(hashes(8)))


def test_proof_hashes_must_be_32_bytes() -> None:
    leaves = hashes(3)
    proof = merkle.inclusion_proof(0, 3, merkle.MemoryTree(leaves))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_BAD_HASH):
        merkle.verify_inclusion(0, 3, leaves[0], [proof[0] + b"\x00", proof[1]], mth(leaves))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_BAD_HASH):
        merkle.verify_inclusion(0, 3, leaves[0][:31], proof, mth(leaves))


def test_generation_refuses_impossible_requests() -> None:
    tree = merkle.MemoryTree(hashes(5))
    with pytest.raises(LogInputError, match=Code.MERKLE_BAD_SIZE):
        merkle.inclusion_proof(5, 5, tree)
    with pytest.raises(LogInputError, match=Code.MERKLE_BAD_SIZE):
        merkle.consistency_proof(0, 5, tree)
    with pytest.raises(LogInputError, match=Code.MERKLE_BAD_SIZE):
        merkle.consistency_proof(4, 3, tree)
