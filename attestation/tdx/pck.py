"""Intel SGX extensions of a PCK certificate (OID 1.2.840.113741.1.13.1).

SGX Extensions ::= SEQUENCE OF SEQUENCE { OID, value }
  .1 PPID (OCTET STRING 16)
  .2 TCB  SEQUENCE OF { .2.1 .. .2.16 SGX TCB component SVNs (INTEGER),
                        .2.17 PCESVN (INTEGER), .2.18 CPUSVN (OCTET STRING 16) }
  .3 PCE-ID (OCTET STRING 2)
  .4 FMSPC (OCTET STRING 6)
  .5 SGX type (ENUMERATED)
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from teeplane.attestation.der import (
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    DerError,
    decode_unsigned,
    parse_oid_value_sequence,
    read_tlv,
)

SGX_EXTENSIONS_OID = "1.2.840.113741.1.13.1"
_TCB = SGX_EXTENSIONS_OID + ".2"


@dataclass(frozen=True, slots=True)
class PckExtensions:
    """The platform facts Intel certifies in a PCK certificate."""

    ppid: bytes
    sgx_tcb_components: tuple[int, ...]
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int


def parse_pck_extensions(cert: x509.Certificate) -> PckExtensions:
    """Read the SGX extensions of a PCK certificate; raise DerError if absent or malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID))
    except x509.ExtensionNotFound:
        raise DerError("the PCK certificate has no SGX extensions (1.2.840.113741.1.13.1)") from None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise DerError("unexpected SGX extension type")
    return decode_sgx_extensions(value.value)


def decode_sgx_extensions(der: bytes) -> PckExtensions:
    """Decode the DER value of the SGX extensions."""
    if not der or der[0] != TAG_SEQUENCE:
        raise DerError("SGX extensions are not a SEQUENCE")
    _, start, end = read_tlv(der, 0, len(der))
    top = parse_oid_value_sequence(der, start, end)
    _, tcb_value = _field(top, _TCB, TAG_SEQUENCE)
    tcb = parse_oid_value_sequence(tcb_value, 0, len(tcb_value))
    components = tuple(decode_unsigned(_field(tcb, f"{_TCB}.{i}", TAG_INTEGER)[1]) for i in range(1, 17))
    return PckExtensions(
        ppid=_octets(top, SGX_EXTENSIONS_OID + ".1", 16),
        sgx_tcb_components=components,
        pcesvn=decode_unsigned(_field(tcb, f"{_TCB}.17", TAG_INTEGER)[1]),
        cpusvn=_octets(tcb, f"{_TCB}.18", 16),
        pce_id=_octets(top, SGX_EXTENSIONS_OID + ".3", 2),
        fmspc=_octets(top, SGX_EXTENSIONS_OID + ".4", 6),
        sgx_type=decode_unsigned(_field(top, SGX_EXTENSIONS_OID + ".5", TAG_ENUMERATED)[1]),
    )


def _field(fields: dict[str, tuple[int, bytes]], oid: str, tag: int) -> tuple[int, bytes]:
    found = fields.get(oid)
    if found is None:
        raise DerError(f"SGX extension {oid} is missing")
    if found[0] != tag:
        raise DerError(f"SGX extension {oid} has tag {found[0]:#x}, expected {tag:#x}")
    return found


def _octets(fields: dict[str, tuple[int, bytes]], oid: str, size: int) -> bytes:
    value = _field(fields, oid, TAG_OCTET_STRING)[1]
    if len(value) != size:
        raise DerError(f"SGX extension {oid} is {len(value)} bytes, expected {size}")
    return value
