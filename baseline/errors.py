"""Error codes of the Baseline Generation System.

Every code is stable: tests, CLI JSON and problem+json bodies rely on it. `LogInputError` means
input could not be read or does not fit (a note, a checkpoint, a proof file, an entry, an index);
`LogVerificationError` means it was read and refused (a signature or Merkle proof that does not
verify, two checkpoints that fork); `LogStorageError` means the log on disk is unusable.
"""

from __future__ import annotations

from enum import StrEnum

from teeplane.errors import InputError, RefusedError, TeeplaneError


class Code(StrEnum):
    """Stable error codes, grouped by what failed."""

    # Merkle proofs (RFC 9162, Merkle Tree Certificates subtrees)
    MERKLE_BAD_SIZE = "merkle.bad_size"
    MERKLE_BAD_HASH = "merkle.bad_hash"
    MERKLE_PROOF_LENGTH = "merkle.proof_length"
    MERKLE_ROOT_MISMATCH = "merkle.root_mismatch"

    # signed notes and their keys
    NOTE_MALFORMED = "note.malformed"
    NOTE_KEY_MALFORMED = "note.key_malformed"
    NOTE_SIGNATURE_INVALID = "note.signature_invalid"
    NOTE_NO_TRUSTED_SIGNATURE = "note.no_trusted_signature"

    # checkpoints
    CHECKPOINT_MALFORMED = "checkpoint.malformed"
    CHECKPOINT_ORIGIN_MISMATCH = "checkpoint.origin_mismatch"
    CHECKPOINT_INCONSISTENT = "checkpoint.inconsistent"

    # c2sp.org/tlog-proof files
    TLOG_PROOF_MALFORMED = "tlog_proof.malformed"

    # the tiled log on disk
    TLOG_ENTRY_TOO_LARGE = "tlog.entry_too_large"
    TLOG_OUT_OF_RANGE = "tlog.out_of_range"
    TLOG_LOCKED = "tlog.locked"
    TLOG_TILE_CORRUPT = "tlog.tile_corrupt"
    TLOG_BUNDLE_CORRUPT = "tlog.bundle_corrupt"
    TLOG_CHECKPOINT_MISMATCH = "tlog.checkpoint_mismatch"
    TLOG_MISSING = "tlog.missing"
    TLOG_EXISTS = "tlog.exists"


class LogInputError(InputError):
    """A note, key, checkpoint or proof file that cannot be read; an entry or index that does not fit."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class LogVerificationError(RefusedError):
    """A signature, Merkle proof or consistency check that failed."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class LogStorageError(TeeplaneError):
    """The log's files are missing, locked by another writer, or do not match its checkpoint."""

    http_status = 500

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)
