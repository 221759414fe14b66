"""A tiled transparency log in a directory (c2sp.org/tlog-tiles layout), with one writer.

`append` writes a batch: entry bundles and hash tiles first (each file to a temporary name,
fsynced, renamed; then their directories fsynced), and only then the signed checkpoint, replaced
atomically the same way. The checkpoint is the commit point: after a crash the log is what its
checkpoint says, and tiles written beyond it are ignored and later overwritten. A file the
checkpoint covers is never rewritten.

Reading verifies as it goes: on open the partial tiles at the right edge must hash to the
checkpoint's root; a full tile, when first read, must hash to its entry in the tile above; an entry
must hash to its leaf hash. Full tiles are kept, expanded into their Merkle levels, in an LRU cache.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from teeplane.baseline.errors import Code, LogInputError, LogStorageError
from teeplane.baseline.tlog import merkle, proof
from teeplane.baseline.tlog.checkpoint import Checkpoint, open_checkpoint
from teeplane.baseline.tlog.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash
from teeplane.baseline.tlog.note import Signer
from teeplane.baseline.tlog.tiles import (
    FULL_TILE_BYTES,
    TILE_HEIGHT,
    TILE_WIDTH,
    bundle_path,
    decode_bundle,
    encode_bundle,
    hash_at,
    tile_levels,
    tile_path,
)

CHECKPOINT = "checkpoint"
_LOCK = ".lock"
_IO_THREADS = 8


class TileLog:
    """An append-only log of byte entries (at most 65,535 bytes each) stored as C2SP tiles.

    Not thread-safe: one `TileLog` per directory and process (a lock file keeps other writers out).
    """

    def __init__(self, root: Path, signer: Signer, *, origin: str | None = None, cache_tiles: int = 1024) -> None:
        """Use `TileLog.create` or `TileLog.open`."""
        self._root = root
        self._signer = signer
        self._origin = signer.name if origin is None else origin
        self._cache_tiles = cache_tiles
        self._cache: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._lock_fd = _lock(root)
        self._size = 0
        self._checkpoint = b""
        self._root_hash = EMPTY_ROOT
        self._edge: list[bytes] = []  # per tile level: the hashes of the rightmost, partial tile
        self._edge_levels: dict[int, list[bytes]] = {}
        self._bundle: list[bytes] = []  # the entries of the partial entry bundle
        self._dirs: set[Path] = set()
        self._io = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="tlog-io")

    @classmethod
    def create(cls, root: Path, signer: Signer, *, origin: str | None = None, cache_tiles: int = 1024) -> TileLog:
        """Start an empty log in `root` (created if needed) with a signed checkpoint of size 0."""
        root.mkdir(parents=True, exist_ok=True)
        log = cls(root, signer, origin=origin, cache_tiles=cache_tiles)
        try:
            if (root / CHECKPOINT).exists():
                raise LogStorageError(Code.TLOG_EXISTS, f"{root} already holds a log")
            log._publish(0, [], [])
        except BaseException:
            log.close()
            raise
        return log

    @classmethod
    def open(cls, root: Path, signer: Signer, *, origin: str | None = None, cache_tiles: int = 1024) -> TileLog:
        """Open the log in `root` at its checkpoint, checking the checkpoint against the tiles."""
        if not (root / CHECKPOINT).is_file():
            raise LogStorageError(Code.TLOG_MISSING, f"no log checkpoint in {root}")
        log = cls(root, signer, origin=origin, cache_tiles=cache_tiles)
        try:
            log._recover()
        except BaseException:
            log.close()
            raise
        return log

    def close(self) -> None:
        """Release the writer lock."""
        self._io.shutdown()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> TileLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The log's directory (its files are laid out as c2sp.org/tlog-tiles paths)."""
        return self._root

    @property
    def size(self) -> int:
        """The number of entries the current checkpoint covers."""
        return self._size

    @property
    def checkpoint(self) -> bytes:
        """The current signed checkpoint."""
        return self._checkpoint

    @property
    def root_hash(self) -> bytes:
        """The Merkle tree hash of the current checkpoint."""
        return self._root_hash

    # -- reading

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**level entries from entry index << level (a `HashReader`)."""
        if level < 0 or index < 0 or (index + 1) << level > self._size:
            raise LogInputError(Code.TLOG_OUT_OF_RANGE, f"no complete subtree ({level}, {index}) in size {self._size}")
        tile_level, sub = divmod(level, TILE_HEIGHT)
        tile = (index << sub) >> TILE_HEIGHT
        if tile < self._size >> (TILE_HEIGHT * (tile_level + 1)):
            levels = self._full_tile(tile_level, tile)
        else:
            levels = self._edge_tile(tile_level)
        return hash_at(levels[sub], index - (tile << (TILE_HEIGHT - sub)))

    def entry(self, index: int) -> bytes:
        """Entry `index`, checked against its leaf hash."""
        return self.entries(index, index + 1)[0]

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Entries `start` to `stop - 1`, each checked against its leaf hash."""
        if not 0 <= start < stop <= self._size:
            raise LogInputError(Code.TLOG_OUT_OF_RANGE, f"no entries [{start}, {stop}) in a log of size {self._size}")
        out: list[bytes] = []
        full_tiles = self._size // TILE_WIDTH
        for tile in range(start // TILE_WIDTH, (stop - 1) // TILE_WIDTH + 1):
            bundle = self._full_bundle(tile) if tile < full_tiles else self._bundle
            first = tile * TILE_WIDTH
            out += bundle[max(start, first) - first : min(stop, first + TILE_WIDTH) - first]
        for index, data in enumerate(out, start):
            if leaf_hash(data) != self.node(0, index):
                raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, f"entry {index} does not match its leaf hash")
        return out

    def _full_bundle(self, tile: int) -> list[bytes]:
        path = bundle_path(tile)
        try:
            entries = decode_bundle(self._read(path, Code.TLOG_BUNDLE_CORRUPT))
        except ValueError:
            raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, "truncated entry bundle", where=path) from None
        if len(entries) != TILE_WIDTH:
            raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, f"{len(entries)} entries in a full bundle", where=path)
        return entries

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of entry `index` in the tree of `size` entries (default: the checkpoint's)."""
        return merkle.inclusion_proof(index, self._tree_size(size), self)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of `size1` entries to that of `size2` (default: the checkpoint's)."""
        return merkle.consistency_proof(size1, self._tree_size(size2), self)

    def tree_hash(self, size: int) -> bytes:
        """The Merkle tree hash of the first `size` entries."""
        return merkle.range_hash(0, self._tree_size(size), self)

    def tlog_proof(self, index: int) -> bytes:
        """A c2sp.org/tlog-proof of entry `index` under the current checkpoint."""
        return proof.format_proof(proof.TlogProof(index, tuple(self.inclusion_proof(index)), self._checkpoint))

    def _tree_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise LogInputError(Code.TLOG_OUT_OF_RANGE, f"no tree of size {size} in a log of size {self._size}")
        return size

    def _full_tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        levels = self._cache.get(key)
        if levels is not None:
            self._cache.move_to_end(key)
            return levels
        path = tile_path(level, index)
        data = self._read(path)
        if len(data) != FULL_TILE_BYTES:
            raise LogStorageError(Code.TLOG_TILE_CORRUPT, f"a full tile of {len(data)} bytes", where=path)
        levels = tile_levels(data)
        if levels[TILE_HEIGHT] != self.node(TILE_HEIGHT * (level + 1), index):
            raise LogStorageError(
                Code.TLOG_TILE_CORRUPT, "the tile does not hash to its entry one level up", where=path
            )
        self._remember(key, levels)
        return levels

    def _remember(self, key: tuple[int, int], levels: list[bytes]) -> None:
        self._cache[key] = levels
        if len(self._cache) > self._cache_tiles:
            self._cache.popitem(last=False)

    def _edge_tile(self, level: int) -> list[bytes]:
        levels = self._edge_levels.get(level)
        if levels is None:
            levels = self._edge_levels[level] = tile_levels(self._edge[level])
        return levels

    def _read(self, path: str, code: Code = Code.TLOG_TILE_CORRUPT) -> bytes:
        try:
            return (self._root / path).read_bytes()
        except FileNotFoundError:
            raise LogStorageError(code, "a file the checkpoint covers is missing", where=path) from None

    # -- opening

    def _recover(self) -> None:
        note = (self._root / CHECKPOINT).read_bytes()
        checkpoint = open_checkpoint(note, self._origin, [self._signer.verifier])
        size = checkpoint.size
        self._size, self._checkpoint, self._root_hash = size, note, checkpoint.root_hash
        self._edge = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            count = size >> (TILE_HEIGHT * level)
            width = count % TILE_WIDTH
            hashes = self._read(tile_path(level, count // TILE_WIDTH, width)) if width else b""
            if len(hashes) != width * HASH_SIZE:
                raise LogStorageError(
                    Code.TLOG_TILE_CORRUPT, "a partial tile of the wrong width", where=f"level {level}"
                )
            self._edge.append(hashes)
            level += 1
        if merkle.range_hash(0, size, self) != checkpoint.root_hash:
            raise LogStorageError(Code.TLOG_CHECKPOINT_MISMATCH, "the tiles do not hash to the checkpoint's root")
        width = size % TILE_WIDTH
        if width:
            path = bundle_path(size // TILE_WIDTH, width)
            try:
                self._bundle = decode_bundle(self._read(path, Code.TLOG_BUNDLE_CORRUPT))
            except ValueError:
                raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, "truncated entry bundle", where=path) from None
            if b"".join(map(leaf_hash, self._bundle)) != self._edge[0]:
                raise LogStorageError(
                    Code.TLOG_BUNDLE_CORRUPT, "the partial bundle does not match its tile", where=path
                )

    # -- appending

    def append(self, entries: Sequence[bytes]) -> range:
        """Add `entries` and commit them under a new signed checkpoint; returns their indices.

        When this returns, the entries, their tiles and the checkpoint are durably on disk. Entries are
        at most 65,535 bytes; a batch with a longer one is refused whole.
        """
        start = self._size
        size = start + len(entries)
        if size == start:
            return range(start, start)
        edge = [bytearray(row) for row in self._edge]
        full: list[tuple[tuple[int, int], list[bytes]]] = []
        for i, data in enumerate(entries, start + 1):
            _push(edge, 0, leaf_hash(data), i, full)
        files = {tile_path(level, index): levels[0] for (level, index), levels in full}
        first = start - start % TILE_WIDTH  # the first entry of the partial bundle
        pending = [*self._bundle, *entries]
        for tile_start in range(first, size - size % TILE_WIDTH, TILE_WIDTH):
            chunk = pending[tile_start - first : tile_start - first + TILE_WIDTH]
            files[bundle_path(tile_start // TILE_WIDTH)] = encode_bundle(chunk)
        bundle = pending[size - size % TILE_WIDTH - first :]
        if bundle:
            files[bundle_path(size // TILE_WIDTH, len(bundle))] = encode_bundle(bundle)
        for level, row in enumerate(edge):
            count = size >> (TILE_HEIGHT * level)
            if row and count != start >> (TILE_HEIGHT * level):
                files[tile_path(level, count // TILE_WIDTH, len(row) // HASH_SIZE)] = bytes(row)
        self._write_files(files)
        self._publish(size, [bytes(row) for row in edge], bundle)
        obsolete = []  # the partial tiles of tiles now full, deleted in the background
        for (level, index), levels in full:
            self._remember((level, index), levels)
            obsolete.append(self._root / (tile_path(level, index) + ".p"))
            if level == 0:
                obsolete.append(self._root / (bundle_path(index) + ".p"))
        for directory in obsolete:
            self._io.submit(shutil.rmtree, directory, ignore_errors=True)
        return range(start, size)

    def _publish(self, size: int, edge: list[bytes], bundle: list[bytes]) -> None:
        """Switch to the tree of `size` and commit it with a new checkpoint, or stay as before."""
        before = self._size, self._edge, self._bundle, self._edge_levels
        self._size, self._edge, self._bundle, self._edge_levels = size, edge, bundle, {}
        try:
            root_hash = merkle.range_hash(0, size, self)
            note = Checkpoint(self._origin, size, root_hash).sign(self._signer)
            path = self._root / CHECKPOINT
            _write_file(path, note)
            _fsync_dir(path.parent)
        except BaseException:
            self._size, self._edge, self._bundle, self._edge_levels = before
            raise
        self._checkpoint, self._root_hash = note, root_hash

    def _write_files(self, files: dict[str, bytes]) -> None:
        """Write and fsync the files, then their directories, each step's syscalls in parallel."""
        paths = [self._root / name for name in files]
        dirty: set[Path] = set()
        for path in paths:
            self._make_dir(path.parent, dirty)
            dirty.add(path.parent)
        list(self._io.map(_write_file, paths, files.values()))
        list(self._io.map(_fsync_dir, dirty))

    def _make_dir(self, directory: Path, dirty: set[Path]) -> None:
        if directory in self._dirs or directory == self._root:
            return
        self._make_dir(directory.parent, dirty)
        try:
            directory.mkdir()
        except FileExistsError:
            pass
        else:
            dirty.add(directory.parent)
        self._dirs.add(directory)


def _push(
    edge: list[bytearray], level: int, h: bytes, size: int, full: list[tuple[tuple[int, int], list[bytes]]]
) -> None:
    """Add hash `h` at tile level `level` of the tree growing to `size`; close and carry up full tiles."""
    if level == len(edge):
        edge.append(bytearray())
    row = edge[level]
    row += h
    if len(row) == FULL_TILE_BYTES:
        levels = tile_levels(bytes(row))
        full.append(((level, (size >> (TILE_HEIGHT * (level + 1))) - 1), levels))
        row.clear()
        _push(edge, level + 1, levels[TILE_HEIGHT], size, full)


def _write_file(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, fsynced (the directory is the caller's to fsync)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(root: Path) -> int:
    """Take the directory's writer lock (released when the fd closes, or the process dies)."""
    fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogStorageError(Code.TLOG_LOCKED, f"another writer holds {root}") from None
    return fd
