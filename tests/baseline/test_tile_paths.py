"""Reading c2sp.org/tlog-tiles paths back: only the canonical spelling of a tile names it."""

from __future__ import annotations

import pytest

from teeplane.baseline.tlog.tiles import TileId, bundle_path, parse_tile_path, tile_path


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("tile/0/000", TileId(0, 0, 256)),
        ("tile/0/x001/234.p/5", TileId(0, 1234, 5)),
        ("tile/63/x999/x999/999", TileId(63, 999_999_999, 256)),
        ("tile/entries/000.p/255", TileId(None, 0, 255)),
    ],
)
def test_canonical_paths_name_their_tile(path: str, tile: TileId) -> None:
    assert parse_tile_path(path) == tile
    made = bundle_path(tile.index, tile.width) if tile.level is None else tile_path(tile.level, tile.index, tile.width)
    assert made == path


@pytest.mark.parametrize(
    "path",
    ["tile/00/000", "tile/0/0", "tile/0/x000/001", "tile/0/000.p/0", "tile/0/000.p/05", "tile/0/000.p/256",
     "tile/64/000", "tile/entries/000.p/256", "tile/0/000/", "/tile/0/000", "tile/0/../000", "tile/-1/000"],
)  # fmt: skip
def test_other_spellings_name_no_tile(path: str) -> None:
    with pytest.raises(ValueError):
        parse_tile_path(path)


def test_which_tree_sizes_cover_a_tile() -> None:
    assert TileId(0, 0, 3).covered_by(3) and not TileId(0, 0, 4).covered_by(3)
    assert TileId(None, 1, 256).covered_by(512) and not TileId(None, 1, 256).covered_by(511)
    assert TileId(1, 0, 2).covered_by(512) and not TileId(1, 0, 3).covered_by(767)
