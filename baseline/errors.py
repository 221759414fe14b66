"""Error codes of the Baseline Generation System.

Every code is stable: tests, CLI JSON and problem+json bodies rely on it. `LogInputError` means
input could not be read or does not fit (a note, a checkpoint, a proof file, an entry, an index);
`LogVerificationError` means it was read and refused (a signature or Merkle proof that does not
verify, two checkpoints that fork); `LogStorageError` means the log on disk is unusable.
`BaselineInputError` and `BaselineRefusedError` are the same split for baseline documents, their
DSSE envelopes, signing keys and bundles; `BaselineNotFoundError` is a baseline the BGS does not hold.
`BuildInputError` means a recipe or one of its artifacts cannot be read or measured;
`BuildRefusedError` means an artifact was read but is not what the recipe pins (a digest, a rebuild).
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

    # signing keys (PEM files)
    KEY_MALFORMED = "key.malformed"
    KEY_UNSUPPORTED = "key.unsupported"
    KEY_EXISTS = "key.exists"

    # DSSE envelopes
    DSSE_MALFORMED = "dsse.malformed"
    DSSE_PAYLOAD_TYPE = "dsse.payload_type_unsupported"
    DSSE_SIGNATURE_INVALID = "dsse.signature_invalid"
    DSSE_UNTRUSTED_SIGNER = "dsse.untrusted_signer"

    # baseline documents (in-toto statements) and bundles
    BASELINE_MALFORMED = "baseline.malformed"
    BASELINE_NOT_CANONICAL = "baseline.not_canonical"
    BASELINE_STATEMENT_TYPE = "baseline.statement_type"
    BASELINE_PREDICATE_TYPE = "baseline.predicate_type"
    BASELINE_SUBJECT_MISMATCH = "baseline.subject_mismatch"
    BASELINE_NOT_YET_VALID = "baseline.not_yet_valid"
    BASELINE_EXPIRED = "baseline.expired"
    BASELINE_ID_MISMATCH = "baseline.id_mismatch"
    BASELINE_NOT_FOUND = "baseline.not_found"
    BASELINE_NOT_LOGGED = "baseline.not_logged"
    BASELINE_VERSION_EXISTS = "baseline.version_exists"
    BUNDLE_MALFORMED = "bundle.malformed"
    CHECKPOINT_UNPROVEN = "checkpoint.consistency_unproven"

    # recipes and their artifacts
    RECIPE_MALFORMED = "recipe.malformed"
    ARTIFACT_UNREADABLE = "artifact.unreadable"
    ARTIFACT_DIGEST_MISMATCH = "artifact.digest_mismatch"
    ARTIFACT_INPUTS_DIFFER = "artifact.inputs_differ"

    # what the calculators read
    TDVF_MALFORMED = "tdvf.malformed"
    PE_MALFORMED = "pe.malformed"
    KERNEL_UNSUPPORTED = "kernel.unsupported"
    INITDATA_MALFORMED = "initdata.malformed"
    OCI_LAYOUT_MALFORMED = "oci_layout.malformed"
    SNP_MEASURE_FAILED = "snp_measure.failed"


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


class BaselineInputError(InputError):
    """A key, envelope, statement or bundle that cannot be read or does not have the right shape."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class BaselineRefusedError(RefusedError):
    """A baseline that was read but is refused: bad signature, untrusted signer, outside its validity."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class BaselineNotFoundError(TeeplaneError):
    """No baseline with this ID in the log."""

    http_status = 404

    def __init__(self, baseline_id: str) -> None:
        super().__init__(Code.BASELINE_NOT_FOUND.value, f"no baseline {baseline_id} in the log")


class BaselineConflictError(TeeplaneError):
    """A name@version that already names baselines with other measurements: a version's measurements
    never change (a new baseline of it may only refresh its validity or metadata)."""

    http_status = 409

    def __init__(self, reference: str, holder: str) -> None:
        super().__init__(
            Code.BASELINE_VERSION_EXISTS.value,
            f"{reference} is baseline {holder}, which measures otherwise; publish a new version instead",
            where=reference,
        )


class BuildInputError(InputError):
    """A recipe or artifact that cannot be read, or that a calculator cannot measure."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class BuildRefusedError(RefusedError):
    """An artifact that does not have the digest its recipe pins, or whose two inputs differ."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)
