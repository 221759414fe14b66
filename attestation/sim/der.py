"""A tiny DER encoder for the SGX extensions of a PCK certificate (the inverse of `tdx.pck`)."""

from __future__ import annotations

from teeplane.attestation.der import TAG_ENUMERATED, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE
from teeplane.attestation.tdx.pck import SGX_EXTENSIONS_OID, PckExtensions

_MAX_LENGTH = 0xFFFF_FFFF  # the reader accepts at most four length octets


def encode_sgx_extensions(ext: PckExtensions) -> bytes:
    """DER of the SGX extensions value (OID 1.2.840.113741.1.13.1) for `ext`."""
    if len(ext.sgx_tcb_components) != 16:
        raise ValueError(f"16 SGX TCB component SVNs are needed, got {len(ext.sgx_tcb_components)}")
    tcb_oid = SGX_EXTENSIONS_OID + ".2"
    tcb = [
        _pair(f"{tcb_oid}.{i}", _tlv(TAG_INTEGER, _unsigned(svn))) for i, svn in enumerate(ext.sgx_tcb_components, 1)
    ]
    tcb.append(_pair(f"{tcb_oid}.17", _tlv(TAG_INTEGER, _unsigned(ext.pcesvn))))
    tcb.append(_pair(f"{tcb_oid}.18", _tlv(TAG_OCTET_STRING, ext.cpusvn)))
    return _tlv(
        TAG_SEQUENCE,
        b"".join(
            (
                _pair(SGX_EXTENSIONS_OID + ".1", _tlv(TAG_OCTET_STRING, ext.ppid)),
                _pair(tcb_oid, _tlv(TAG_SEQUENCE, b"".join(tcb))),
                _pair(SGX_EXTENSIONS_OID + ".3", _tlv(TAG_OCTET_STRING, ext.pce_id)),
                _pair(SGX_EXTENSIONS_OID + ".4", _tlv(TAG_OCTET_STRING, ext.fmspc)),
                _pair(SGX_EXTENSIONS_OID + ".5", _tlv(TAG_ENUMERATED, _unsigned(ext.sgx_type))),
            )
        ),
    )


def _pair(oid: str, value: bytes) -> bytes:
    return _tlv(TAG_SEQUENCE, _tlv(TAG_OID, _oid(oid)) + value)


def _tlv(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes((tag, size)) + value
    if size > _MAX_LENGTH:
        raise ValueError(f"a DER value of {size} bytes is too long")
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + value


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    return b"".join(_base128(arc) for arc in [40 * arcs[0] + arcs[1], *arcs[2:]])


def _base128(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def _unsigned(value: int) -> bytes:
    """Minimal two's-complement content octets of a non-negative INTEGER or ENUMERATED."""
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")
