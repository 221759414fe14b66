"""RAS state in one SQLite file: what must survive a restart and be shared by replicas.

Held: the nonce MAC key and the token signing keyring (created once, atomically, by whichever
replica starts first), reference values and appraisal policies per workload, and the replay cache
of used nonces (an atomic insert is the single-use check). Replicas on one host or one shared
volume open the same file (WAL mode); writes are committed before the call returns.

The replay cache is one B-tree keyed by (expiry, nonce id): a claim touches about one page, at
the right edge of the tree, and forgetting expired nonces is a range delete at its left edge.
Purging and WAL checkpoints run on a background thread (`upkeep.StoreUpkeep`), never in a request.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from teeplane.attestation.ras.upkeep import StoreUpkeep

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, workload TEXT NOT NULL, body TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (kind, workload));
CREATE TABLE IF NOT EXISTS nonce_claims (
    expires_at INTEGER NOT NULL, id BLOB NOT NULL, PRIMARY KEY (expires_at, id)) WITHOUT ROWID;
"""
#: Stores written before `nonce_claims` kept used nonces here (three B-trees per claim); moved over once.
_MIGRATE_USED_NONCES = (
    "INSERT OR IGNORE INTO nonce_claims (expires_at, id) SELECT CAST(expires_at AS INTEGER), id FROM used_nonces",
    "DROP TABLE used_nonces",
)
REFERENCE_VALUES = "reference-values"
POLICY = "policy"
#: A WAL file larger than this is cut back to it once its frames have all been checkpointed.
WAL_SIZE_LIMIT = 16 * 1024 * 1024


class RasStore:
    """Durable, replica-shared RAS state (thread-safe; every write is committed on return)."""

    def __init__(self, path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash of the process (it is in the OS's hands before
            # the call returns); only a crash of the machine can lose the last commits.
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (which fsync) run on the upkeep thread, not inline in a request.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._db.executescript(_SCHEMA)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'used_nonces'").fetchone():
                for statement in _MIGRATE_USED_NONCES:
                    db.execute(statement)
        self.upkeep = StoreUpkeep(self, clock)
        self.upkeep.start()

    def close(self) -> None:
        """Stop the upkeep and close the database."""
        self.upkeep.stop()
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def data_version(self) -> int:
        """A number that changes whenever another connection (another replica) commits."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def setting(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The stored value of `name`; the first caller on any replica creates it with `create`."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row[0])
            value = create()
            db.execute("INSERT INTO settings (name, value) VALUES (?, ?)", (name, value))
            return value

    def replace_setting(self, name: str, value: bytes) -> None:
        """Overwrite a setting (e.g. the keyring after rotation)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, value))

    def nonce_key(self) -> bytes:
        """The replicas' shared nonce MAC key."""
        return self.setting("nonce-key", lambda: secrets.token_bytes(32))

    def put_document(self, kind: str, workload: str, body: str, now: datetime) -> bool:
        """Store a document; True if it replaced an existing one."""
        with self._transaction() as db:
            existed = db.execute("SELECT 1 FROM documents WHERE kind = ? AND workload = ?", (kind, workload)).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO documents (kind, workload, body, updated_at) VALUES (?, ?, ?, ?)",
                (kind, workload, body, now.timestamp()),
            )
            return existed is not None

    def get_document(self, kind: str, workload: str) -> str | None:
        """A stored document, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM documents WHERE kind = ? AND workload = ?", (kind, workload)
            ).fetchone()
        return str(row[0]) if row else None

    def list_documents(self, kind: str) -> list[str]:
        """The workloads that have a document of `kind`."""
        with self._lock:
            rows = self._db.execute("SELECT workload FROM documents WHERE kind = ? ORDER BY workload", (kind,))
            return [str(r[0]) for r in rows.fetchall()]

    def delete_document(self, kind: str, workload: str) -> bool:
        """Delete a document; True if there was one."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM documents WHERE kind = ? AND workload = ?", (kind, workload))
            return cursor.rowcount > 0

    def claim(self, nonce_id: bytes, expires_at: datetime) -> bool:
        """Record a nonce as used; False if any replica already did (the replay check)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO nonce_claims (expires_at, id) VALUES (?, ?)",
                (int(expires_at.timestamp()), nonce_id),
            )
            return cursor.rowcount == 1

    def oldest_claim_expiry(self) -> int | None:
        """The earliest expiry (Unix seconds) among the used nonces held, or None when none are."""
        with self._lock:
            row = self._db.execute("SELECT MIN(expires_at) FROM nonce_claims").fetchone()
        return None if row[0] is None else int(row[0])

    def purge_used_nonces(self, before: int) -> int:
        """Forget used nonces that expired before `before` (Unix seconds; they can no longer be presented)."""
        with self._transaction() as db:
            return db.execute("DELETE FROM nonce_claims WHERE expires_at < ?", (before,)).rowcount

    def checkpoint(self) -> bool:
        """Checkpoint the WAL from this connection, with this process's writers held off (the last few
        frames after `upkeep` has done the bulk); True if every frame is in the database, so that the
        next write starts the WAL afresh."""
        with self._lock:
            busy, frames, done = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return not busy and frames == done
