"""A log writer to kill: appends batches to a TileLog forever, printing each acknowledged range.

Run as `python tlog_appender.py DIR SEED_HEX`; each line is `start stop` for entries start..stop-1,
printed only after `append` returned. Entry i is `entry(i)`, so a reader knows what to expect.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from teeplane.baseline.tlog.note import Signer
from teeplane.baseline.tlog.storage import TileLog

ORIGIN = "example.com/baseline-test"


def entry(index: int) -> bytes:
    """The bytes of entry `index`: varied lengths, unique contents."""
    return b"entry %d;" % index * (1 + index % 7)


def signer(seed: bytes) -> Signer:
    """The log's key from a 32-byte seed."""
    return Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(seed))


def main() -> None:
    log = TileLog.open(Path(sys.argv[1]), signer(bytes.fromhex(sys.argv[2])))
    batch = 1
    while True:
        done = log.append([entry(i) for i in range(log.size, log.size + batch)])
        print(done.start, done.stop, flush=True)
        batch = batch * 7 % 301 + 1


if __name__ == "__main__":
    main()
