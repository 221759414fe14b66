"""Background upkeep of the RAS store: forget expired nonces and keep the WAL short.

Once a second, on its own thread and never in a request:

* used nonces that have expired are deleted, one second of expiries per transaction, so a
  backlog (after downtime) never holds the writers off for long;
* the WAL is checkpointed PASSIVE from the thread's own connection (the copy and its fsync run
  beside the writers). Under steady load some write always lands during that fsync, so the WAL
  would never be fully checkpointed and, since SQLite only starts a WAL afresh when it is, would
  grow without bound (measured: 14 KB per attestation with no end). Once it holds more than
  `CATCH_UP_FRAMES`, the few frames written since are checkpointed with this process's writers
  held off (one short copy and fsync), and the next write starts the WAL from the beginning.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from teeplane.attestation.ras.store import RasStore

INTERVAL_S = 1.0
#: WAL frames (pages) past which a checkpoint holds this process's writers off to finish.
CATCH_UP_FRAMES = 2048
#: Expiries (seconds) purged per transaction.
PURGE_SLICE_S = 1
log = logging.getLogger("teeplane.ras.store")


class StoreUpkeep:
    """The upkeep thread of one store; `clock` is the service's (a fixed evaluation time purges nothing new)."""

    def __init__(self, store: RasStore, clock: Callable[[], datetime]) -> None:
        self._store, self._clock = store, clock
        self._stop = threading.Event()
        self._db = sqlite3.connect(store.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._thread = threading.Thread(target=self._loop, name="ras-store-upkeep", daemon=True)

    def start(self) -> None:
        """Run `run_once` every `INTERVAL_S` until stopped."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._db.close()

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            try:
                self.run_once()
            except sqlite3.Error:  # e.g. busy for 10 s: try again next time
                log.warning("RAS store upkeep failed", exc_info=True)

    def run_once(self) -> tuple[int, bool]:
        """Purge expired nonces and checkpoint; how many nonces were forgotten, and whether the WAL
        was fully checkpointed (the next write starts it afresh)."""
        return self.purge(), self.checkpoint()

    def purge(self) -> int:
        """Forget the used nonces that expired before now, a slice of expiries at a time."""
        now = int(self._clock().timestamp())
        oldest, purged = self._store.oldest_claim_expiry(), 0
        while oldest is not None and oldest < now:
            oldest = min(oldest + PURGE_SLICE_S, now)
            purged += self._store.purge_used_nonces(oldest)
        return purged

    def checkpoint(self) -> bool:
        """Checkpoint beside the writers, then, if the WAL has grown long, finish with them held off."""
        busy, frames, done = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames == done:
            return True
        return frames > CATCH_UP_FRAMES and self._store.checkpoint()
