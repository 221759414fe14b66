"""C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): the signed note of a tree head.

The note text is the origin line, the tree size in decimal, the base64 root hash, then optional
non-empty extension lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from teeplane.baseline.tlog.note import Signer, Verifier, open_note, parse_note, sign_note

MAX_TREE_SIZE = (1 << 64) - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


def parse_decimal(text: str, code: Code, what: str) -> int:
    """A uint64 in ASCII decimal without leading zeros, or `LogInputError(code)`."""
    if not _DECIMAL.fullmatch(text) or int(text) > MAX_TREE_SIZE:
        raise LogInputError(code, f"{what} is not a decimal uint64 without leading zeros")
    return int(text)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, tree size and root hash, and any extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text of this checkpoint."""
        lines = [self.origin, str(self.size), b64.encode(self.root_hash), *self.extensions]
        _check_lines(lines)
        if not 0 <= self.size <= MAX_TREE_SIZE or len(self.root_hash) != HASH_SIZE:
            raise LogInputError(Code.CHECKPOINT_MALFORMED, "tree size out of range or root hash not 32 bytes")
        return "".join(line + "\n" for line in lines)

    def sign(self, signer: Signer) -> bytes:
        """The checkpoint as a note signed by `signer`."""
        return sign_note(self.text(), [signer])


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (already verified as a note)."""
    if not text.endswith("\n"):
        raise LogInputError(Code.CHECKPOINT_MALFORMED, "checkpoint text ends in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise LogInputError(Code.CHECKPOINT_MALFORMED, "a checkpoint is at least three lines")
    _check_lines(lines)
    origin, size, root_b64, *extensions = lines
    root_hash = b64.decode(root_b64, Code.CHECKPOINT_MALFORMED, "the root hash")
    if len(root_hash) != HASH_SIZE:
        raise LogInputError(Code.CHECKPOINT_MALFORMED, f"the root hash is {len(root_hash)} bytes, not {HASH_SIZE}")
    return Checkpoint(
        origin, parse_decimal(size, Code.CHECKPOINT_MALFORMED, "the tree size"), root_hash, tuple(extensions)
    )


def _check_lines(lines: list[str]) -> None:
    if any(not line or any(ch < " " for ch in line) for line in lines):
        raise LogInputError(Code.CHECKPOINT_MALFORMED, "checkpoint lines are non-empty, without control characters")


def open_checkpoint(note: bytes, origin: str, verifiers: Sequence[Verifier]) -> Checkpoint:
    """Verify a signed checkpoint of the log `origin` and parse it."""
    checkpoint = parse_checkpoint(open_note(note, verifiers).text)
    if checkpoint.origin != origin:
        raise LogVerificationError(
            Code.CHECKPOINT_ORIGIN_MISMATCH, f"checkpoint of {checkpoint.origin!r}, expected {origin!r}"
        )
    return checkpoint


def peek_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint a signed note holds, WITHOUT verifying any signature (for its size, say)."""
    return parse_checkpoint(parse_note(note)[0])


def verify_checkpoints_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that `new` extends `old` by `proof`; two heads that cannot be reconciled are a fork.

    Heads of the same size must have the same root; every tree extends the empty one.
    """
    if old.origin != new.origin:
        raise LogVerificationError(Code.CHECKPOINT_ORIGIN_MISMATCH, "checkpoints of two different logs")
    if old.size == 0:
        if old.root_hash != EMPTY_ROOT or proof or (new.size == 0 and new.root_hash != EMPTY_ROOT):
            raise LogVerificationError(Code.CHECKPOINT_INCONSISTENT, "an empty tree has the empty root, no proof")
        return
    try:
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except LogVerificationError as e:
        if e.code != Code.MERKLE_ROOT_MISMATCH:
            raise
        raise LogVerificationError(
            Code.CHECKPOINT_INCONSISTENT,
            f"fork: the tree of size {new.size} does not extend the one of size {old.size} ({e.message})",
        ) from e
