"""Intel TDX quote v4 / v5 parsing (Intel TDX DCAP Quote Generation Library and Quote Format).

Layout (all integers little-endian):

    header (48)            version u16, attestation key type u16, TEE type u32, QE SVN u16,
                           PCE SVN u16, QE vendor ID (16), user data (20)
    v4: TD report body     584 bytes (TDX 1.0)
    v5: body type u16, body size u32, body (type 2: TDX 1.0, 584 bytes; type 3: TDX 1.5, 648 bytes)
    signature data len u32, then signature data:
        quote signature (64, r||s), attestation key (64, x||y),
        certification data: type u16 (6 = QE report), size u32, then
            QE report (384), QE report signature (64), QE auth data (size u16 + data),
            certification data: type u16 (5 = PCK chain), size u32, PEM chain (may end in NUL)

The quote signature covers everything before the signature-data length. The quote is parsed
by that length, so trailing bytes after the signature data are tolerated and ignored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from teeplane.attestation.binary import Reader
from teeplane.attestation.errors import Code, EvidenceFormatError

HEADER_SIZE = 48
TD10_BODY_SIZE = 584
TD15_BODY_SIZE = 648
ENCLAVE_REPORT_SIZE = 384

TEE_TYPE_TDX = 0x81
ATTESTATION_KEY_ECDSA_P256 = 2
BODY_TYPE_TD10 = 2
BODY_TYPE_TD15 = 3
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6

_BODY_SIZES = {BODY_TYPE_TD10: TD10_BODY_SIZE, BODY_TYPE_TD15: TD15_BODY_SIZE}
HEADER_LAYOUT = struct.Struct("<HHIHH16s20s")
TD10_LAYOUT = struct.Struct("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s")
TD15_EXTRA_LAYOUT = struct.Struct("<16s48s")
ENCLAVE_REPORT_LAYOUT = struct.Struct("<16sI28x16s32s32x32s96xHH60x64s")


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """The 48-byte quote header."""

    version: int
    attestation_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True, slots=True)
class TdReport:
    """The TD report body: what the TDX module measured about the TD."""

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes | None = None

    @property
    def debug(self) -> bool:
        """TD attribute bit 0 (TUD.DEBUG): the TD runs in debug mode and is not confidential."""
        return bool(self.td_attributes[0] & 1)

    def measurements(self) -> dict[str, str]:
        """The measurement registers and report data as lowercase hex."""
        out = {
            "mrtd": self.mrtd.hex(),
            "rtmr0": self.rtmrs[0].hex(),
            "rtmr1": self.rtmrs[1].hex(),
            "rtmr2": self.rtmrs[2].hex(),
            "rtmr3": self.rtmrs[3].hex(),
            "mrconfigid": self.mrconfigid.hex(),
            "mrowner": self.mrowner.hex(),
            "mrownerconfig": self.mrownerconfig.hex(),
            "report_data": self.report_data.hex(),
            "mrseam": self.mrseam.hex(),
            "mrsignerseam": self.mrsignerseam.hex(),
            "td_attributes": self.td_attributes.hex(),
            "xfam": self.xfam.hex(),
            "tee_tcb_svn": self.tee_tcb_svn.hex(),
        }
        if self.mrservicetd is not None:
            out["mrservicetd"] = self.mrservicetd.hex()
        return out


@dataclass(frozen=True, slots=True)
class EnclaveReport:
    """An SGX enclave report body (here: the Quoting Enclave's), with its raw 384 bytes."""

    cpusvn: bytes
    miscselect: int
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    isvprodid: int
    isvsvn: int
    report_data: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed TDX quote; `signed` is the exact byte range the quote signature covers."""

    header: QuoteHeader
    body_type: int
    body: TdReport
    signed: bytes
    signature: bytes
    attestation_key: bytes
    qe_report: EnclaveReport
    qe_report_signature: bytes
    qe_auth_data: bytes
    pck_chain: bytes
    size: int


def parse_quote(data: bytes) -> Quote:
    """Parse a TDX quote v4 or v5; raise EvidenceFormatError naming the field and offset."""
    reader = Reader(data, "quote", Code.QUOTE_TRUNCATED)
    header = _parse_header(reader)
    if header.version == 4:
        body_type, body_size = BODY_TYPE_TD10, TD10_BODY_SIZE
    else:
        body_type = reader.u16("body type")
        body_size = reader.u32("body size")
        expected = _BODY_SIZES.get(body_type)
        if expected is None:
            raise EvidenceFormatError(
                Code.QUOTE_UNSUPPORTED_BODY_TYPE,
                f"quote body type {body_type} is not a TD report (2: TDX 1.0, 3: TDX 1.5)",
                where="quote+0x30",
            )
        if body_size != expected:
            raise EvidenceFormatError(
                Code.QUOTE_UNSUPPORTED_BODY_TYPE,
                f"quote body type {body_type} must be {expected} bytes, header says {body_size}",
                where="quote+0x32",
            )
    body = _parse_td_report(reader.bytes(body_size, "TD report body"), body_type)
    signed = data[: reader.pos]
    sig_len = reader.u32("signature data length")
    sig = reader.sub(sig_len, "signature data", "quote signature data")
    signature = sig.bytes(64, "quote signature")
    attestation_key = sig.bytes(64, "attestation key")
    qe_report, qe_report_signature, qe_auth_data, pck_chain = _parse_qe_certification(sig)
    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed=signed,
        signature=signature,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        pck_chain=pck_chain,
        size=sig.end,
    )


def _parse_header(reader: Reader) -> QuoteHeader:
    raw = reader.bytes(HEADER_SIZE, "header")
    header = QuoteHeader(*HEADER_LAYOUT.unpack(raw))
    if header.version not in (4, 5):
        raise EvidenceFormatError(
            Code.QUOTE_UNSUPPORTED_VERSION,
            f"quote version {header.version} is not supported (4 and 5 are)",
            where="quote+0x0",
        )
    if header.attestation_key_type != ATTESTATION_KEY_ECDSA_P256:
        raise EvidenceFormatError(
            Code.QUOTE_UNSUPPORTED_KEY_TYPE,
            f"attestation key type {header.attestation_key_type} is not ECDSA P-256 (2)",
            where="quote+0x2",
        )
    if header.tee_type != TEE_TYPE_TDX:
        raise EvidenceFormatError(
            Code.QUOTE_UNSUPPORTED_TEE_TYPE,
            f"TEE type {header.tee_type:#x} is not TDX (0x81)",
            where="quote+0x4",
        )
    return header


def _parse_td_report(raw: bytes, body_type: int) -> TdReport:
    f = TD10_LAYOUT.unpack_from(raw)
    extra: tuple[bytes, bytes] | tuple[None, None] = (None, None)
    if body_type == BODY_TYPE_TD15:
        extra = TD15_EXTRA_LAYOUT.unpack_from(raw, TD10_BODY_SIZE)
    return TdReport(
        tee_tcb_svn=f[0],
        mrseam=f[1],
        mrsignerseam=f[2],
        seam_attributes=f[3],
        td_attributes=f[4],
        xfam=f[5],
        mrtd=f[6],
        mrconfigid=f[7],
        mrowner=f[8],
        mrownerconfig=f[9],
        rtmrs=(f[10], f[11], f[12], f[13]),
        report_data=f[14],
        tee_tcb_svn2=extra[0],
        mrservicetd=extra[1],
    )


def parse_enclave_report(raw: bytes) -> EnclaveReport:
    """Parse a 384-byte SGX enclave report body."""
    if len(raw) != ENCLAVE_REPORT_SIZE:
        raise EvidenceFormatError(
            Code.QUOTE_CERTIFICATION_DATA,
            f"an enclave report is {ENCLAVE_REPORT_SIZE} bytes, got {len(raw)}",
        )
    cpusvn, misc, attributes, mrenclave, mrsigner, prodid, isvsvn, report_data = ENCLAVE_REPORT_LAYOUT.unpack(raw)
    return EnclaveReport(cpusvn, misc, attributes, mrenclave, mrsigner, prodid, isvsvn, report_data, raw)


def _parse_qe_certification(sig: Reader) -> tuple[EnclaveReport, bytes, bytes, bytes]:
    outer_type = sig.u16("certification data type")
    if outer_type != CERT_DATA_QE_REPORT:
        raise EvidenceFormatError(
            Code.QUOTE_CERTIFICATION_DATA,
            f"certification data type {outer_type} is not QE report certification data (6)",
            where=f"quote+{sig.pos - 2:#x}",
        )
    outer = sig.sub(sig.u32("certification data size"), "certification data")
    qe_report = parse_enclave_report(outer.bytes(ENCLAVE_REPORT_SIZE, "QE report"))
    qe_report_signature = outer.bytes(64, "QE report signature")
    qe_auth_data = outer.bytes(outer.u16("QE auth data size"), "QE auth data")
    inner_type = outer.u16("PCK certification data type")
    if inner_type != CERT_DATA_PCK_CHAIN:
        raise EvidenceFormatError(
            Code.QUOTE_CERTIFICATION_DATA,
            f"nested certification data type {inner_type} is not a PCK certificate chain (5)",
            where=f"quote+{outer.pos - 2:#x}",
        )
    chain = outer.bytes(outer.u32("PCK chain size"), "PCK certificate chain")
    return qe_report, qe_report_signature, qe_auth_data, chain.rstrip(b"\x00")
