"""A minimal bounded DER reader for the few certificate extensions X.509 libraries leave opaque
(Intel's SGX extensions, AMD's SPL values). Every read checks its bounds."""

from __future__ import annotations

from collections.abc import Iterator

from teeplane.attestation.errors import Code, EvidenceFormatError

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30


class DerError(EvidenceFormatError):
    """Malformed DER in a certificate extension."""

    def __init__(self, message: str, code: Code = Code.PCK_EXTENSION_MALFORMED) -> None:
        super().__init__(code, message)


def read_tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV at `pos`; return (tag, value start, value end)."""
    if pos + 2 > end:
        raise DerError(f"DER element truncated at offset {pos}")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise DerError(f"DER length of {n} bytes is invalid at offset {pos - 1}")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise DerError(f"DER value of {length} bytes overruns its container at offset {pos}")
    return tag, pos, pos + length


def iter_elements(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, int]]:
    """Yield (tag, value start, value end) for each TLV in `data[start:end]`."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        tag, vstart, vend = read_tlv(data, pos, end)
        yield tag, vstart, vend
        pos = vend


def decode_oid(value: bytes) -> str:
    """Dotted string of a DER OBJECT IDENTIFIER value."""
    if not value:
        raise DerError("empty OBJECT IDENTIFIER")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    acc = 0
    for byte in value[1:]:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(acc)
            acc = 0
    if value[-1] & 0x80:
        raise DerError("OBJECT IDENTIFIER ends inside an arc")
    return ".".join(map(str, arcs))


def decode_unsigned(value: bytes) -> int:
    """A DER INTEGER or ENUMERATED value known to be non-negative."""
    if not value or value[0] & 0x80:
        raise DerError("expected a non-negative INTEGER")
    return int.from_bytes(value, "big")


def parse_oid_value_sequence(data: bytes, start: int, end: int) -> dict[str, tuple[int, bytes]]:
    """Parse SEQUENCE OF SEQUENCE { OID, value } into {oid: (value tag, value bytes)}."""
    out: dict[str, tuple[int, bytes]] = {}
    for tag, vstart, vend in iter_elements(data, start, end):
        if tag != TAG_SEQUENCE:
            raise DerError(f"expected SEQUENCE {{OID, value}}, found tag {tag:#x}")
        items = list(iter_elements(data, vstart, vend))
        if len(items) != 2 or items[0][0] != TAG_OID:
            raise DerError("expected SEQUENCE {OID, value}")
        oid = decode_oid(data[items[0][1] : items[0][2]])
        vtag, s, e = items[1]
        out[oid] = (vtag, data[s:e])
    return out
