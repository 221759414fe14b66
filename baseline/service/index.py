"""The baseline ID -> log index map, in SQLite beside the log, with each baseline's name@version.

The log is the truth: the map is written after the log commits, and on open it catches up with any
entries it does not cover yet (after a crash between the two, or from scratch when the file is
gone, or written by an older version). An ID maps to the first entry that holds it; a name@version
to the latest baseline that has it, and every baseline of a name@version measures the same.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple


class IndexRow(NamedTuple):
    """A logged baseline: its ID, its log index, its name@version (if any), its measurements digest."""

    id: str
    log_index: int
    reference: str | None
    measured: str


class BaselineIndex:
    """Which log entry holds each baseline. Not thread-safe: the registry serializes access."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # what a power loss drops is caught up from the log
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(baselines)")}
        if columns and "measured" not in columns:
            self._db.execute("DROP TABLE baselines")  # an older map: rebuilt from the log
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS baselines"
            " (id TEXT PRIMARY KEY, log_index INTEGER NOT NULL UNIQUE, reference TEXT, measured TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS baselines_by_reference ON baselines (reference, log_index)")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def covered(self) -> int:
        """How many log entries, from the first, the map has seen."""
        row = self._db.execute("SELECT COALESCE(MAX(log_index) + 1, 0) FROM baselines").fetchone()
        return int(row[0])

    def get(self, baseline_id: str) -> int | None:
        """The index of the entry holding `baseline_id`, if any."""
        row = self._db.execute("SELECT log_index FROM baselines WHERE id = ?", (baseline_id,)).fetchone()
        return None if row is None else int(row[0])

    def named(self, reference: str) -> tuple[str, str] | None:
        """The ID of the latest baseline named `reference` (name@version) and its measurements digest."""
        row = self._db.execute(
            "SELECT id, measured FROM baselines WHERE reference = ? ORDER BY log_index DESC LIMIT 1", (reference,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def add(self, rows: Iterable[IndexRow]) -> None:
        """Record rows in one transaction; an ID already mapped keeps its first index."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO baselines (id, log_index, reference, measured) VALUES (?, ?, ?, ?)", rows
            )

    def forget_from(self, size: int) -> None:
        """Drop entries at or past `size` (a log restored to an older checkpoint)."""
        self._db.execute("DELETE FROM baselines WHERE log_index >= ?", (size,))
