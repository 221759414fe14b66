"""A bounded reader for untrusted binary structures: every read checks its bounds first."""

from __future__ import annotations

import struct

from teeplane.attestation.errors import Code, EvidenceFormatError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Reader:
    """Reads little-endian fields from `data[start:end]`, raising a typed error past the end.

    `what` names the structure for error messages (e.g. "quote"); `code` is the error code
    raised on truncation. Offsets in errors are absolute offsets into `data`.
    """

    __slots__ = ("code", "data", "end", "pos", "what")

    def __init__(self, data: bytes, what: str, code: Code, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.what = what
        self.code = code
        self.pos = start
        self.end = len(data) if end is None else min(end, len(data))

    def _need(self, n: int, field: str) -> int:
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise EvidenceFormatError(
                self.code,
                f"{self.what}: {field} needs {n} bytes at offset {pos}, only {max(self.end - pos, 0)} remain",
                where=f"{self.what}+{pos:#x}",
            )
        self.pos = pos + n
        return pos

    def bytes(self, n: int, field: str) -> bytes:
        """The next `n` bytes."""
        pos = self._need(n, field)
        return self.data[pos : pos + n]

    def u16(self, field: str) -> int:
        """The next little-endian unsigned 16-bit integer."""
        return int(_U16.unpack_from(self.data, self._need(2, field))[0])

    def u32(self, field: str) -> int:
        """The next little-endian unsigned 32-bit integer."""
        return int(_U32.unpack_from(self.data, self._need(4, field))[0])

    def u64(self, field: str) -> int:
        """The next little-endian unsigned 64-bit integer."""
        return int(_U64.unpack_from(self.data, self._need(8, field))[0])

    def skip(self, n: int, field: str) -> None:
        """Advance past `n` bytes."""
        self._need(n, field)

    def sub(self, n: int, field: str, what: str | None = None) -> Reader:
        """A reader over the next `n` bytes (bounded to them), advancing this one past them."""
        pos = self._need(n, field)
        return Reader(self.data, what or self.what, self.code, pos, pos + n)

    @property
    def remaining(self) -> int:
        """How many bytes are left before the end bound."""
        return self.end - self.pos
