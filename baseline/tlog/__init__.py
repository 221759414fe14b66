"""The baseline transparency log: RFC 9162 Merkle trees, C2SP signed notes, checkpoints, tiles and proofs."""
