"""TDX quote v4 serialization and signing: the inverse of `tdx.quote.parse_quote`, using its layouts.

The quote is the header and TD report signed by the attestation key, followed by QE report
certification data: the simulated QE's report (binding the attestation key), its signature by the
PCK key, the QE authentication data and the NUL-terminated PEM PCK chain.
"""

from __future__ import annotations

import hashlib
import struct

from teeplane.attestation.sim import platform
from teeplane.attestation.sim.pki import SimulationAuthority, raw_public_key, sign_p256
from teeplane.attestation.tdx.quote import (
    ATTESTATION_KEY_ECDSA_P256,
    CERT_DATA_PCK_CHAIN,
    CERT_DATA_QE_REPORT,
    ENCLAVE_REPORT_LAYOUT,
    HEADER_LAYOUT,
    TD10_LAYOUT,
    TEE_TYPE_TDX,
    QuoteHeader,
    TdReport,
)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def encode_header(header: QuoteHeader) -> bytes:
    """The 48-byte quote header."""
    return HEADER_LAYOUT.pack(
        header.version,
        header.attestation_key_type,
        header.tee_type,
        header.qe_svn,
        header.pce_svn,
        header.qe_vendor_id,
        header.user_data,
    )


def encode_td10(body: TdReport) -> bytes:
    """The 584-byte TDX 1.0 TD report body."""
    return TD10_LAYOUT.pack(
        body.tee_tcb_svn,
        body.mrseam,
        body.mrsignerseam,
        body.seam_attributes,
        body.td_attributes,
        body.xfam,
        body.mrtd,
        body.mrconfigid,
        body.mrowner,
        body.mrownerconfig,
        *body.rtmrs,
        body.report_data,
    )


def encode_qe_report(report_data: bytes) -> bytes:
    """The simulated Quoting Enclave's 384-byte report carrying `report_data` (64 bytes)."""
    return ENCLAVE_REPORT_LAYOUT.pack(
        platform.CPUSVN,
        platform.QE_MISCSELECT,
        platform.QE_ATTRIBUTES,
        platform.QE_MRENCLAVE,
        platform.QE_MRSIGNER,
        platform.QE_ISVPRODID,
        platform.QE_ISVSVN,
        report_data,
    )


def build_quote(authority: SimulationAuthority, body: TdReport) -> bytes:
    """A v4 quote of `body`, signed as the simulated QE would under `authority`."""
    attestation_key = raw_public_key(authority.attestation_key)
    header = QuoteHeader(
        version=4,
        attestation_key_type=ATTESTATION_KEY_ECDSA_P256,
        tee_type=TEE_TYPE_TDX,
        qe_svn=0,  # reserved in TDX quotes
        pce_svn=0,  # reserved in TDX quotes
        qe_vendor_id=platform.QE_VENDOR_ID,
        user_data=hashlib.sha256(attestation_key).digest()[:16] + bytes(4),  # QE ID, then zeros
    )
    signed = encode_header(header) + encode_td10(body)
    auth_data = platform.QE_AUTH_DATA
    qe_report = encode_qe_report(hashlib.sha256(attestation_key + auth_data).digest() + bytes(32))
    chain = authority.pck_chain_pem() + b"\x00"
    certification = b"".join(
        (
            qe_report,
            sign_p256(authority.pck_key, qe_report),
            _U16.pack(len(auth_data)),
            auth_data,
            _U16.pack(CERT_DATA_PCK_CHAIN),
            _U32.pack(len(chain)),
            chain,
        )
    )
    signature_data = b"".join(
        (
            sign_p256(authority.attestation_key, signed),
            attestation_key,
            _U16.pack(CERT_DATA_QE_REPORT),
            _U32.pack(len(certification)),
            certification,
        )
    )
    return signed + _U32.pack(len(signature_data)) + signature_data
