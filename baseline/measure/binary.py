"""Bounded little-endian reads at absolute offsets of untrusted bytes (firmware, PE images)."""

from __future__ import annotations

import struct

from teeplane.baseline.errors import BuildInputError, Code

_FORMATS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}


class Fields:
    """Reads fields of `data`; a read past the end raises `code`, naming `what`, the field and the offset."""

    __slots__ = ("code", "data", "what")

    def __init__(self, data: bytes, code: Code, what: str) -> None:
        self.data = data
        self.code = code
        self.what = what

    def error(self, message: str, offset: int) -> BuildInputError:
        """A typed error about `what` at `offset`."""
        where = f"{self.what}+{offset:#x}"
        return BuildInputError(self.code, f"{self.what}: {message} (offset {offset:#x})", where=where)

    def check(self, offset: int, size: int, name: str) -> None:
        """Refuse unless `size` bytes from `offset` lie inside the data."""
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise self.error(f"{name} needs {size} bytes, the {len(self.data)}-byte image ends before", offset)

    def bytes(self, offset: int, size: int, name: str) -> bytes:
        """`size` bytes from `offset`."""
        self.check(offset, size, name)
        return self.data[offset : offset + size]

    def uint(self, offset: int, size: int, name: str) -> int:
        """The unsigned little-endian integer of `size` (1, 2, 4 or 8) bytes at `offset`."""
        self.check(offset, size, name)
        return int(_FORMATS[size].unpack_from(self.data, offset)[0])
