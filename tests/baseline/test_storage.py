"""The tiled log on disk: the C2SP layout, proofs from tiles, recovery from its checkpoint, tampering,
forks, and SIGKILL in the middle of appends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tlog_appender import ORIGIN, entry, signer

from teeplane.baseline.errors import Code, LogInputError, LogStorageError, LogVerificationError
from teeplane.baseline.tlog import merkle, proof, storage
from teeplane.baseline.tlog.checkpoint import Checkpoint, open_checkpoint, verify_checkpoints_consistent
from teeplane.baseline.tlog.note import Signer
from teeplane.baseline.tlog.storage import TileLog
from teeplane.baseline.tlog.tiles import decode_bundle, index_path

SEED = bytes(range(32))
APPENDER = Path(__file__).resolve().parent.parent / "support" / "tlog_appender.py"


@pytest.fixture
def key() -> Signer:
    return signer(SEED)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def log(root: Path, key: Signer) -> Iterator[TileLog]:
    with TileLog.create(root, key) as log:
        yield log


def fill(log: TileLog, count: int, batch: int = 1000) -> list[bytes]:
    """Append entries `entry(log.size)`... until the log holds `count`; returns them all."""
    while log.size < count:
        log.append([entry(i) for i in range(log.size, min(count, log.size + batch))])
    return [entry(i) for i in range(count)]


def reference(entries: list[bytes]) -> merkle.MemoryTree:
    return merkle.MemoryTree(merkle.leaf_hash(e) for e in entries)


def test_index_paths_follow_tlog_tiles() -> None:
    assert index_path(0) == "000"
    assert index_path(999) == "999"
    assert index_path(1000) == "x001/000"
    assert index_path(1234067) == "x001/x234/067"


def test_a_tree_of_70000_is_laid_out_as_the_spec_says(root: Path, log: TileLog) -> None:
    """tlog-tiles: 273 full level 0 tiles, a partial of width 112, a full level 1 tile, a partial level 1
    tile of width 17, a partial level 2 tile of width 1; an entry bundle per level 0 tile."""
    entries = fill(log, 70_000, batch=4096)
    tiles = {p.relative_to(root).as_posix() for p in (root / "tile").rglob("*") if p.is_file()}
    level0 = {f"tile/0/{index_path(n)}" for n in range(273)} | {"tile/0/273.p/112"}
    level1 = {"tile/1/000", "tile/1/001.p/17"}
    bundles = {f"tile/entries/{index_path(n)}" for n in range(273)} | {"tile/entries/273.p/112"}
    assert level0 | level1 | {"tile/2/000.p/1"} | bundles <= tiles
    # besides: only partial tiles of earlier checkpoints, of the tiles that are not full yet
    assert {t.rsplit("/", 1)[0] for t in tiles - level0 - level1 - bundles} <= {
        "tile/0/273.p",
        "tile/entries/273.p",
        "tile/1/001.p",
        "tile/2/000.p",
    }
    assert decode_bundle((root / "tile/entries/005").read_bytes()) == entries[5 * 256 : 6 * 256]
    assert (root / "tile/entries/005").read_bytes()[:2] == len(entries[1280]).to_bytes(2, "big")
    tree = reference(entries)
    tree_leaves = [merkle.leaf_hash(e) for e in entries]
    assert (root / "tile/0/005").read_bytes() == b"".join(tree.node(0, i) for i in range(1280, 1536))
    assert (root / "tile/1/000").read_bytes()[32:64] == tree.node(8, 1) == merkle.root(tree_leaves[256:512])
    assert (root / "tile/2/000.p/1").read_bytes() == tree.node(16, 0)
    checkpoint = open_checkpoint(log.checkpoint, ORIGIN, [signer(SEED).verifier])
    assert (checkpoint.size, checkpoint.root_hash) == (70_000, tree.root())
    for size in (1, 255, 256, 257, 65_535, 65_536, 65_537, 69_999, 70_000):
        assert log.tree_hash(size) == tree.root(size)
        for index in {0, size // 3, size - 1}:
            assert log.inclusion_proof(index, size) == merkle.inclusion_proof(index, size, tree)
        assert log.consistency_proof(max(1, size // 2), size) == merkle.consistency_proof(max(1, size // 2), size, tree)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=6), data=st.data())
def test_proofs_from_tiles_are_the_merkle_proofs(
    tmp_path_factory: pytest.TempPathFactory, key: Signer, batches: list[int], data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("log")
    entries: list[bytes] = []
    with TileLog.create(root, key) as log:
        for count in batches:
            added = log.append([entry(len(entries) + i) for i in range(count)])
            assert added == range(len(entries), len(entries) + count)
            entries += [entry(i) for i in added]
    with TileLog.open(root, key, cache_tiles=2) as log:
        tree = reference(entries)
        assert log.size == len(entries) and log.root_hash == tree.root()
        if not entries:
            return
        assert log.entries(0, len(entries)) == entries
        size = data.draw(st.integers(min_value=1, max_value=len(entries)))
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        inclusion = log.inclusion_proof(index, size)
        merkle.verify_inclusion(index, size, merkle.leaf_hash(entries[index]), inclusion, tree.root(size))
        consistency = log.consistency_proof(size)
        merkle.verify_consistency(size, len(entries), consistency, tree.root(size), tree.root())


def test_partial_tiles_are_pruned_once_full(root: Path, log: TileLog) -> None:
    log.append([entry(i) for i in range(100)])
    assert (root / "tile/0/000.p/100").is_file()
    log.append([entry(i) for i in range(100, 300)])
    log.close()  # deletions run in the background; closing waits for them
    assert not (root / "tile/0/000.p").exists() and not (root / "tile/entries/000.p").exists()
    assert (root / "tile/0/001.p/44").is_file()


def test_tlog_proof_verifies_offline(log: TileLog, key: Signer) -> None:
    entries = fill(log, 1000)
    verified = proof.verify_proof(log.tlog_proof(777), entries[777], ORIGIN, [key.verifier])
    assert (verified.index, verified.checkpoint.size) == (777, 1000)
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        proof.verify_proof(log.tlog_proof(777), entries[778], ORIGIN, [key.verifier])


def test_a_proof_for_another_tree_size_is_refused(log: TileLog, key: Signer) -> None:
    fill(log, 5)
    at_5 = proof.parse_proof(log.tlog_proof(4))
    fill(log, 6)
    at_6 = proof.parse_proof(log.tlog_proof(4))
    stale = proof.format_proof(proof.TlogProof(4, at_5.hashes, at_6.checkpoint))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_PROOF_LENGTH):
        proof.verify_proof(stale, entry(4), ORIGIN, [key.verifier])
    fill(log, 9)
    at_9 = proof.parse_proof(log.tlog_proof(0))
    fill(log, 10)
    at_10 = proof.parse_proof(log.tlog_proof(0))
    assert len(at_9.hashes) == len(at_10.hashes)
    stale = proof.format_proof(proof.TlogProof(0, at_9.hashes, at_10.checkpoint))
    with pytest.raises(LogVerificationError, match=Code.MERKLE_ROOT_MISMATCH):
        proof.verify_proof(stale, entry(0), ORIGIN, [key.verifier])


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_full_tile_is_detected_when_read(root: Path, log: TileLog, key: Signer) -> None:
    fill(log, 1000)
    log.close()
    _flip_byte(root / "tile/0/001", 32 * 7)
    with TileLog.open(root, key) as reopened:
        reopened.inclusion_proof(10)  # other tiles are fine
        with pytest.raises(LogStorageError, match=Code.TLOG_TILE_CORRUPT):
            reopened.inclusion_proof(300)


def test_a_tampered_level_1_tile_is_detected(tmp_path: Path, key: Signer) -> None:
    with TileLog.create(tmp_path / "log", key) as log:
        fill(log, 66_000, batch=6000)
    _flip_byte(tmp_path / "log/tile/1/000", 32 * 3)
    with TileLog.open(tmp_path / "log", key) as reopened, pytest.raises(LogStorageError, match=Code.TLOG_TILE_CORRUPT):
        reopened.inclusion_proof(5)


def test_a_tampered_partial_tile_or_bundle_is_detected(root: Path, log: TileLog, key: Signer) -> None:
    fill(log, 300)
    log.close()
    _flip_byte(root / "tile/0/001.p/44", 0)
    with pytest.raises(LogStorageError, match=Code.TLOG_CHECKPOINT_MISMATCH):
        TileLog.open(root, key)
    _flip_byte(root / "tile/0/001.p/44", 0)
    _flip_byte(root / "tile/entries/001.p/44", 5)
    with pytest.raises(LogStorageError, match=Code.TLOG_BUNDLE_CORRUPT):
        TileLog.open(root, key)
    _flip_byte(root / "tile/entries/001.p/44", 5)
    _flip_byte(root / "tile/entries/000", 5)
    with TileLog.open(root, key) as reopened:
        assert reopened.entry(1) == entry(1)  # the byte flipped is in entry 0
        with pytest.raises(LogStorageError, match=Code.TLOG_BUNDLE_CORRUPT):
            reopened.entry(0)


def test_a_tampered_checkpoint_is_refused(root: Path, log: TileLog, key: Signer) -> None:
    fill(log, 300)
    log.close()
    path = root / storage.CHECKPOINT
    good = path.read_bytes()
    path.write_bytes(good.replace(b"\n300\n", b"\n299\n"))
    with pytest.raises(LogVerificationError, match=Code.NOTE_SIGNATURE_INVALID):
        TileLog.open(root, key)
    path.write_bytes(Checkpoint(ORIGIN, 300, b"\x00" * 32).sign(key))
    with pytest.raises(LogStorageError, match=Code.TLOG_CHECKPOINT_MISMATCH):
        TileLog.open(root, key)
    path.write_bytes(Checkpoint(ORIGIN, 300, log.root_hash).sign(Signer.generate(ORIGIN)))
    with pytest.raises(LogVerificationError, match=Code.NOTE_NO_TRUSTED_SIGNATURE):
        TileLog.open(root, key)
    path.write_bytes(good)
    TileLog.open(root, key).close()


def test_a_fork_is_detected(tmp_path: Path, key: Signer) -> None:
    """Two logs under one key that diverge after entry 4: their checkpoints are inconsistent."""
    with TileLog.create(tmp_path / "a", key) as a, TileLog.create(tmp_path / "b", key) as b:
        a.append([entry(i) for i in range(5)] + [b"honest"])
        b.append([entry(i) for i in range(5)] + [b"forged"])
        b_at_6 = open_checkpoint(b.checkpoint, ORIGIN, [key.verifier])
        a_at_6 = open_checkpoint(a.checkpoint, ORIGIN, [key.verifier])
        with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_INCONSISTENT):
            verify_checkpoints_consistent(a_at_6, b_at_6, [])
        b.append([entry(i) for i in range(6, 9)])
        b_at_9 = open_checkpoint(b.checkpoint, ORIGIN, [key.verifier])
        verify_checkpoints_consistent(b_at_6, b_at_9, b.consistency_proof(6))
        with pytest.raises(LogVerificationError, match=Code.CHECKPOINT_INCONSISTENT):
            verify_checkpoints_consistent(a_at_6, b_at_9, b.consistency_proof(6))


def test_a_crash_before_the_checkpoint_leaves_the_old_log(
    root: Path, log: TileLog, key: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tiles written past the checkpoint are ignored, in memory and on open, and overwritten later."""
    fill(log, 200)
    real_write = storage._write_file

    def crash_at_checkpoint(path: Path, data: bytes) -> None:
        if path.name == storage.CHECKPOINT:
            raise OSError("crash")
        real_write(path, data)

    monkeypatch.setattr(storage, "_write_file", crash_at_checkpoint)
    with pytest.raises(OSError, match="crash"):
        log.append([b"lost %d" % i for i in range(600)])
    assert (root / "tile/0/002").is_file() and (root / "tile/entries/003.p/32").is_file()
    monkeypatch.undo()
    assert log.size == 200 and log.entry(199) == entry(199)
    entries = fill(log, 300)
    assert log.entries(0, 300) == entries and log.root_hash == reference(entries).root()
    log.close()
    with TileLog.open(root, key) as reopened:
        assert reopened.size == 300
        entries = fill(reopened, 1100)
        assert reopened.entries(0, 1100) == entries
        assert reopened.root_hash == reference(entries).root()
    assert not (root / "tile/entries/003.p").exists()


def test_one_writer_at_a_time(root: Path, log: TileLog, key: Signer) -> None:
    with pytest.raises(LogStorageError, match=Code.TLOG_LOCKED):
        TileLog.open(root, key)
    with pytest.raises(LogStorageError, match=Code.TLOG_LOCKED):
        TileLog.create(root, key)
    log.close()
    with pytest.raises(LogStorageError, match=Code.TLOG_EXISTS):
        TileLog.create(root, key)
    with pytest.raises(LogStorageError, match=Code.TLOG_MISSING):
        TileLog.open(root / "nowhere", key)


def test_entry_limits_and_ranges(log: TileLog) -> None:
    assert log.append([]) == range(0, 0)
    assert log.append([b"", b"\xff" * 0xFFFF]) == range(0, 2)
    assert log.entries(0, 2) == [b"", b"\xff" * 0xFFFF]
    with pytest.raises(LogInputError, match=Code.TLOG_ENTRY_TOO_LARGE):
        log.append([b"ok", b"\x00" * 0x10000])
    assert log.size == 2
    with pytest.raises(LogInputError, match=Code.TLOG_OUT_OF_RANGE):
        log.entry(2)
    with pytest.raises(LogInputError, match=Code.TLOG_OUT_OF_RANGE):
        log.inclusion_proof(0, 3)


def _acknowledged(line: str) -> int:
    _, stop = map(int, line.split())
    return stop


def test_sigkill_during_appends_keeps_every_acknowledged_entry(tmp_path: Path, key: Signer) -> None:
    """A writer appending as fast as it can is killed at random moments; each time the log reopens at a
    checkpoint that verifies, holding every acknowledged entry byte for byte."""
    root = tmp_path / "log"
    TileLog.create(root, key).close()
    rng = random.Random(9)
    acknowledged = 0
    env = os.environ | {"PYTHONSAFEPATH": "1"}
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, str(APPENDER), str(root), SEED.hex()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=env,
        )
        assert child.stdout is not None
        kill_at = time.monotonic() + rng.uniform(0.3, 1.2)
        lines = 0
        while time.monotonic() < kill_at or lines < 3:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "appender died"
            acknowledged, lines = _acknowledged(line), lines + 1
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
        acknowledged = max([acknowledged, *map(_acknowledged, rest.splitlines())])
        with TileLog.open(root, key) as log:
            assert log.size >= acknowledged
            entries = log.entries(0, log.size)  # every bundle and tile read and checked
            assert entries == [entry(i) for i in range(log.size)]
            assert log.root_hash == reference(entries).root()
