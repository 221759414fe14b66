"""Self-contained proofs that an entry is in a log (c2sp.org/tlog-proof).

```
c2sp.org/tlog-proof@v1
[extra <base64 opaque data>]
index <decimal>
<base64 inclusion proof hash, leaf sibling first, one per line>

<the signed checkpoint, verbatim>
```

A proof is verified offline against the log's origin and verifier key: the checkpoint's signature,
then the entry's inclusion in the checkpointed tree. The extra data is not authenticated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from teeplane.baseline.errors import Code, LogInputError
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.checkpoint import Checkpoint, open_checkpoint, parse_decimal
from teeplane.baseline.tlog.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from teeplane.baseline.tlog.note import Verifier

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64


@dataclass(frozen=True, slots=True)
class TlogProof:
    """The parts of a proof: entry index, inclusion proof, signed checkpoint, optional extra data."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """What a verified proof establishes: the entry's index in the tree of a verified checkpoint."""

    index: int
    checkpoint: Checkpoint
    extra: bytes | None


def format_proof(p: TlogProof) -> bytes:
    """The proof file."""
    lines = [HEADER]
    if p.extra is not None:
        lines.append(f"extra {b64.encode(p.extra)}")
    lines.append(f"index {p.index}")
    lines += [b64.encode(h) for h in p.hashes]
    return ("\n".join(lines) + "\n\n").encode() + p.checkpoint


def parse_proof(data: bytes) -> TlogProof:
    """Read a proof file strictly (the checkpoint is not verified here)."""
    head, sep, checkpoint = data.partition(b"\n\n")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise LogInputError(Code.TLOG_PROOF_MALFORMED, "the proof lines are ASCII") from None
    if not sep or not checkpoint or lines[0] != HEADER:
        raise LogInputError(Code.TLOG_PROOF_MALFORMED, f"not a {HEADER} file with a checkpoint")
    pos, extra = 1, None
    if len(lines) > pos and lines[pos].startswith("extra "):
        extra = b64.decode(lines[pos].removeprefix("extra "), Code.TLOG_PROOF_MALFORMED, "the extra data")
        pos += 1
    if len(lines) <= pos or not lines[pos].startswith("index "):
        raise LogInputError(Code.TLOG_PROOF_MALFORMED, "no index line")
    index = parse_decimal(lines[pos].removeprefix("index "), Code.TLOG_PROOF_MALFORMED, "the index")
    hashes = tuple(b64.decode(line, Code.TLOG_PROOF_MALFORMED, "a proof hash") for line in lines[pos + 1 :])
    if len(hashes) > MAX_PROOF_HASHES or any(len(h) != HASH_SIZE for h in hashes):
        raise LogInputError(Code.TLOG_PROOF_MALFORMED, f"at most {MAX_PROOF_HASHES} proof hashes of {HASH_SIZE} bytes")
    return TlogProof(index, hashes, checkpoint, extra)


def verify_proof(data: bytes, entry: bytes, origin: str, verifiers: Sequence[Verifier]) -> VerifiedProof:
    """Verify a proof file for `entry`: the checkpoint is signed by a trusted key for `origin` and
    the inclusion proof leads from the entry at the index to the checkpoint's root."""
    p = parse_proof(data)
    checkpoint = open_checkpoint(p.checkpoint, origin, verifiers)
    verify_inclusion(p.index, checkpoint.size, leaf_hash(entry), p.hashes, checkpoint.root_hash)
    return VerifiedProof(p.index, checkpoint, p.extra)
