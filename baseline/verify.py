"""Verifying a baseline bundle offline, in order: the DSSE signature under pinned signing keys, the
statement (an in-toto baseline in canonical form), its validity window, its inclusion in the log
under the pinned log key, and, given a checkpoint seen before, that the log has not forked since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from securesystemslib.signer import Key

from teeplane.baseline import dsse
from teeplane.baseline.bundle import BaselineBundle
from teeplane.baseline.document import PAYLOAD_TYPE, BaselineDocument, check_validity, parse_document
from teeplane.baseline.errors import BaselineRefusedError, Code
from teeplane.baseline.tlog.checkpoint import Checkpoint, verify_checkpoints_consistent
from teeplane.baseline.tlog.note import Verifier
from teeplane.baseline.tlog.proof import verify_proof


@dataclass(frozen=True, slots=True)
class VerifiedBaseline:
    """A baseline that verified: its document, who signed it, where it is in the log."""

    document: BaselineDocument
    signers: tuple[str, ...]
    index: int
    checkpoint: Checkpoint
    consistent_with: Checkpoint | None


def verify_bundle(
    bundle: BaselineBundle,
    signer_keys: Sequence[Key],
    log_key: Verifier,
    at: datetime,
    *,
    previous: Checkpoint | None = None,
    consistency: Sequence[bytes] | None = None,
) -> VerifiedBaseline:
    """Verify `bundle` as of `at`; the log's origin is the log key's name (c2sp convention).

    With `previous`, the proof's checkpoint and `previous` must be one tree at two sizes: `consistency`
    is the proof between them (smaller size first), needed unless the sizes are equal.
    """
    verified = dsse.verify(bundle.envelope, signer_keys, PAYLOAD_TYPE)
    document = parse_document(verified.payload)
    check_validity(document.statement, at)
    if bundle.proof is None:
        raise BaselineRefusedError(Code.BASELINE_NOT_LOGGED, "the bundle has no transparency log proof")
    included = verify_proof(bundle.proof.encode(), bundle.envelope.canonical(), log_key.name, [log_key])
    if previous is not None:
        check_consistent(previous, included.checkpoint, consistency)
    return VerifiedBaseline(document, verified.signers, included.index, included.checkpoint, previous)


def check_consistent(first: Checkpoint, second: Checkpoint, proof: Sequence[bytes] | None) -> None:
    """Check two checkpoints of one log describe one tree, by `proof` from the smaller to the larger."""
    old, new = (first, second) if first.size <= second.size else (second, first)
    if proof is None and old.size not in (0, new.size):
        raise BaselineRefusedError(
            Code.CHECKPOINT_UNPROVEN,
            f"no consistency proof from size {old.size} to {new.size} (give --bgs, or fetch the bundle with --since)",
        )
    verify_checkpoints_consistent(old, new, proof or [])
