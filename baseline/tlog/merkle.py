"""RFC 9162 Merkle trees (§2.1): hashing, proofs generated from a hash source, proof verification.

Verification follows the algorithms of §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by
step. Every hash in a proof must be 32 bytes; root hashes are compared as given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


class HashReader(Protocol):
    """A source of the hashes of complete subtrees of one tree."""

    def node(self, level: int, index: int) -> bytes:
        """MTH(D[index * 2**level : (index + 1) * 2**level]); that range must be inside the tree."""
        ...


class MemoryTree:
    """A Merkle tree held in memory: every complete subtree's hash, level by level."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash and the complete subtrees it closes."""
        level, h = 0, leaf
        while True:
            row = self._levels[level]
            row.append(h)
            if len(row) % 2:
                return
            h = node_hash(row[-2], row[-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])

    def node(self, level: int, index: int) -> bytes:
        """The hash of a complete subtree (see `HashReader.node`)."""
        return self._levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all)."""
        return range_hash(0, self.size if size is None else size, self)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    return MemoryTree(leaf_hashes).root()


def range_hash(start: int, end: int, reader: HashReader) -> bytes:
    """MTH(D[start:end]) folded from the complete subtrees that make it up.

    `start` must be a multiple of the smallest power of two >= `end - start` (true of every range a
    proof needs): the range is then a run of aligned complete subtrees, largest first.
    """
    if start == end:
        return EMPTY_ROOT
    nodes = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            nodes.append(reader.node(level, start >> level))
            start += 1 << level
    h = nodes.pop()
    while nodes:
        h = node_hash(nodes.pop(), h)
    return h


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where MTH splits a list of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf sibling first."""
    if not 0 <= index < size:
        raise LogInputError(Code.MERKLE_BAD_SIZE, f"no leaf {index} in a tree of size {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(range_hash(lo + k, hi, reader))
            hi = lo + k
        else:
            path.append(reader.node(k.bit_length() - 1, lo // k))
            lo += k
    path.reverse()
    return path


def consistency_proof(size1: int, size2: int, reader: HashReader) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 §2.1.4.1 (empty when the sizes are equal)."""
    if not 0 < size1 <= size2:
        raise LogInputError(Code.MERKLE_BAD_SIZE, f"no consistency proof from size {size1} to {size2}")
    path = []
    lo, hi, known = 0, size2, True
    while size1 != hi:
        k = split_point(hi - lo)
        if size1 <= lo + k:
            path.append(range_hash(lo + k, hi, reader))
            hi = lo + k
        else:
            path.append(reader.node(k.bit_length() - 1, lo // k))
            lo, known = lo + k, False
    if not known:
        path.append(range_hash(lo, hi, reader))
    path.reverse()
    return path


def check_hashes(proof: Sequence[bytes], what: str = "proof hash") -> None:
    """Refuse any hash that is not 32 bytes long."""
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise LogVerificationError(Code.MERKLE_BAD_HASH, f"{what} {i} is {len(h)} bytes, not {HASH_SIZE}")


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Check that `proof` proves `leaf` at `index` in the tree of `size` with `root_hash` (§2.1.3.2)."""
    if not 0 <= index < size:
        raise LogVerificationError(Code.MERKLE_BAD_SIZE, f"no leaf {index} in a tree of size {size}")
    check_hashes([leaf], "leaf hash")
    check_hashes(proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise _too_long(len(proof))
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _too_short(len(proof))
    if r != root_hash:
        raise LogVerificationError(Code.MERKLE_ROOT_MISMATCH, "the inclusion proof leads to another root hash")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that `proof` proves the tree (`size1`, `root1`) a prefix of (`size2`, `root2`) (§2.1.4.2).

    As in RFC 9162 the first tree must not be empty; equal sizes need an empty proof and equal roots.
    """
    if not 0 < size1 <= size2:
        raise LogVerificationError(Code.MERKLE_BAD_SIZE, f"no consistency proof from size {size1} to {size2}")
    check_hashes(proof)
    if size1 == size2:
        if proof:
            raise _too_long(len(proof))
        if root1 != root2:
            raise LogVerificationError(Code.MERKLE_ROOT_MISMATCH, "two different root hashes for one tree size")
        return
    if not proof:
        raise _too_short(0)
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise _too_long(len(proof))
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _too_short(len(proof))
    if fr != root1:
        raise LogVerificationError(
            Code.MERKLE_ROOT_MISMATCH, f"the consistency proof leads to another root for size {size1}"
        )
    if sr != root2:
        raise LogVerificationError(
            Code.MERKLE_ROOT_MISMATCH, f"the consistency proof leads to another root for size {size2}"
        )


def _too_long(n: int) -> LogVerificationError:
    return LogVerificationError(Code.MERKLE_PROOF_LENGTH, f"a proof of {n} hashes is too long for these tree sizes")


def _too_short(n: int) -> LogVerificationError:
    return LogVerificationError(Code.MERKLE_PROOF_LENGTH, f"a proof of {n} hashes is too short for these tree sizes")
