"""The C2SP tlog-tiles layout (c2sp.org/tlog-tiles): tile paths, hash tiles and entry bundles.

A tile at level L holds up to 256 consecutive hashes of Merkle tree level 8·L; a full tile holds
256 and its own Merkle tree hash is the matching hash one tile level up. Paths are
`tile/<L>/<N>` and `tile/entries/<N>`, N in 3-digit groups (`x001/x234/067`), with `.p/<W>` for a
partial tile of width W. Entry bundles are entries with a big-endian uint16 length prefix each.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from teeplane.baseline.errors import Code, LogInputError
from teeplane.baseline.tlog.merkle import HASH_SIZE

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_ENTRY_SIZE = 0xFFFF
MAX_TILE_LEVEL = 63

_TILE_PATH = re.compile(r"tile/(entries|[0-9]{1,2})/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([0-9]{1,3}))?")

_sha256 = hashlib.sha256


def index_path(index: int) -> str:
    """N as zero-padded 3-digit path elements, all but the last prefixed with `x`."""
    groups = []
    while True:
        index, group = divmod(index, 1000)
        groups.append(group)
        if not index:
            break
    *upper, last = reversed(groups)
    return "".join(f"x{g:03d}/" for g in upper) + f"{last:03d}"


def _suffix(width: int) -> str:
    if not 0 < width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not 1..{TILE_WIDTH}")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """`tile/<L>/<N>[.p/<W>]`."""
    return f"tile/{level}/{index_path(index)}{_suffix(width)}"


def bundle_path(index: int, width: int = TILE_WIDTH) -> str:
    """`tile/entries/<N>[.p/<W>]`."""
    return f"tile/entries/{index_path(index)}{_suffix(width)}"


@dataclass(frozen=True, slots=True)
class TileId:
    """Which tile a path names: its level (None for an entry bundle), index and width."""

    level: int | None
    index: int
    width: int

    @property
    def full(self) -> bool:
        """Whether the tile is full (and so never changes)."""
        return self.width == TILE_WIDTH

    def covered_by(self, size: int) -> bool:
        """Whether the tree of `size` entries holds every hash (or entry) of this tile."""
        count = size >> (TILE_HEIGHT * (self.level or 0))
        return self.index * TILE_WIDTH + self.width <= count


def parse_tile_path(path: str) -> TileId:
    """The tile a canonical `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` path names; `ValueError`
    for any other path (leading zeros, extra `x000/` groups, widths out of range)."""
    match = _TILE_PATH.fullmatch(path)
    if match is None:
        raise ValueError(f"not a tile path: {path!r}")
    level = None if match[1] == "entries" else int(match[1])
    tile = TileId(level, int(match[2].replace("x", "").replace("/", "")), int(match[3] or TILE_WIDTH))
    if level is not None and level > MAX_TILE_LEVEL:
        raise ValueError(f"tile level {level} is over {MAX_TILE_LEVEL}")
    canonical = bundle_path(tile.index, tile.width) if level is None else tile_path(level, tile.index, tile.width)
    if canonical != path:
        raise ValueError(f"not a canonical tile path: {path!r}")
    return tile


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries, each prefixed with its length as a big-endian uint16."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise LogInputError(Code.TLOG_ENTRY_TOO_LARGE, f"an entry is at most {MAX_ENTRY_SIZE} bytes")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle; raises `ValueError` on a truncated bundle."""
    entries, pos = [], 0
    while pos < len(data):
        end = pos + 2 + int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 > len(data) or end > len(data):
            raise ValueError("truncated entry bundle")
        entries.append(data[pos + 2 : end])
        pos = end
    return entries


def tile_levels(hashes: bytes) -> list[bytes]:
    """The Merkle tree over a tile's hashes, level by level (concatenated hashes).

    Level r holds the hashes of the complete subtrees of 2**r tile hashes; for a full tile, level 8
    is its single root.
    """
    levels = [hashes]
    row = hashes
    while len(row) >= 2 * HASH_SIZE:
        row = b"".join(
            _sha256(b"\x01" + row[i : i + 2 * HASH_SIZE]).digest()
            for i in range(0, len(row) - HASH_SIZE, 2 * HASH_SIZE)
        )
        levels.append(row)
    return levels


def hash_at(row: bytes, index: int) -> bytes:
    """The `index`-th hash of concatenated hashes."""
    return row[index * HASH_SIZE : (index + 1) * HASH_SIZE]
