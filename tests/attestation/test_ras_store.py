"""The RAS store's replay cache: single use, purging by expiry, a WAL that stays short, migration."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ras_testing import Clock

from teeplane.attestation.ras.store import WAL_SIZE_LIMIT, RasStore
from teeplane.attestation.ras.upkeep import CATCH_UP_FRAMES, PURGE_SLICE_S

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PAGE = 4096


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_claim_is_single_use_across_connections(tmp_path: Path) -> None:
    first, second = RasStore(tmp_path / "ras.db"), RasStore(tmp_path / "ras.db")
    try:
        expiry = NOW + timedelta(minutes=2)
        assert first.claim(b"n" * 16, expiry)
        assert not second.claim(b"n" * 16, expiry)
        assert not first.claim(b"n" * 16, expiry)
        assert second.claim(b"m" * 16, expiry)
    finally:
        first.close()
        second.close()


def test_purge_forgets_only_expired_nonces_however_long_the_backlog(tmp_path: Path) -> None:
    clock = Clock(NOW)
    store = RasStore(tmp_path / "ras.db", clock)
    try:
        for second in range(-30, 30):  # a backlog of 30 s of expiries (tens of purge slices)
            assert store.claim(os.urandom(16), NOW + timedelta(seconds=second))
        assert store.upkeep.purge() == 30
        assert store.upkeep.purge() == 0
        assert store.oldest_claim_expiry() == int(NOW.timestamp())
        clock.now = NOW + timedelta(seconds=10 * PURGE_SLICE_S)
        assert store.upkeep.purge() == 10
        assert store.oldest_claim_expiry() == int(clock.now.timestamp())
    finally:
        store.close()


def test_the_wal_starts_afresh_under_sustained_claims(tmp_path: Path) -> None:
    """Claims with no pause never let a checkpoint beside them finish; the upkeep's catch-up does,
    so the WAL is reused from its start instead of growing by a page or more per claim."""
    path = tmp_path / "ras.db"
    store = RasStore(path)
    try:
        expiry = NOW + timedelta(days=1)
        rounds, per_round = 4, 2 * CATCH_UP_FRAMES
        for _ in range(rounds):
            for _ in range(per_round):
                store.claim(os.urandom(16), expiry)
            assert store.upkeep.checkpoint()
        store.claim(os.urandom(16), expiry)
        _, frames, _ = sqlite3.connect(path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames < 10  # restarted by the last claim
        assert wal_size(path) <= max(WAL_SIZE_LIMIT, 2 * per_round * PAGE)
        assert wal_size(path) < rounds * per_round * PAGE  # what it would be with no restart
    finally:
        store.close()


def test_used_nonces_of_an_older_store_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "ras.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE used_nonces (id BLOB PRIMARY KEY, expires_at REAL NOT NULL);"
        "CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);"
    )
    expiry = NOW + timedelta(minutes=2)
    old.execute("INSERT INTO used_nonces VALUES (?, ?)", (b"u" * 16, expiry.timestamp()))
    old.commit()
    old.close()
    store = RasStore(path)
    try:
        assert not store.claim(b"u" * 16, expiry)
        assert store.claim(b"v" * 16, expiry)
        tables = {row[0] for row in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "used_nonces" not in tables
    finally:
        store.close()
    reopened = RasStore(path)
    try:
        assert not reopened.claim(b"u" * 16, expiry)
    finally:
        reopened.close()
