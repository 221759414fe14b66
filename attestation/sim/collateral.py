"""Simulated DCAP collateral: TCB Info (v3, "TDX") and QE Identity (v2, "TD_QE") for the simulated
platform, signed by the simulation TCB signing key over their exact bytes, with the authority's
CRLs, in the bundle JSON form `tdx.collateral.load_bundle` reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from teeplane.attestation.sim import platform
from teeplane.attestation.sim.pki import SimulationAuthority, pem, sign_p256
from teeplane.attestation.tdx.prepared import (
    QE_IDENTITY_ID,
    QE_IDENTITY_VERSION,
    TCB_INFO_ID,
    TCB_INFO_VERSION,
)
from teeplane.attestation.tdx.tcb import UP_TO_DATE

#: How long collateral is current by default (Intel's is reissued monthly too).
DEFAULT_VALIDITY = timedelta(days=30)
#: The attributes mask of Intel's published TD QE Identity (the XFRM half is ignored).
_QE_ATTRIBUTES_MASK = bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000")
_QE_ATTRIBUTES = bytes(a & m for a, m in zip(platform.QE_ATTRIBUTES, _QE_ATTRIBUTES_MASK, strict=True))


def tcb_info_json(issue_date: datetime, next_update: datetime) -> bytes:
    """TCB Info for the simulated platform: one UpToDate level its PCK and TD module meet."""
    module = {
        "mrsigner": platform.MRSIGNERSEAM.hex().upper(),
        "attributes": platform.SEAM_ATTRIBUTES.hex().upper(),
        "attributesMask": "FF" * len(platform.SEAM_ATTRIBUTES),
    }
    module_level = _level({"isvsvn": platform.TEE_TCB_SVN[0]})
    platform_level = _level(
        {
            "sgxtcbcomponents": [{"svn": svn} for svn in platform.SGX_TCB_COMPONENTS],
            "pcesvn": platform.PCESVN,
            "tdxtcbcomponents": [{"svn": svn} for svn in platform.TEE_TCB_SVN],
        }
    )
    return _compact(
        {
            "id": TCB_INFO_ID,
            "version": TCB_INFO_VERSION,
            "issueDate": _timestamp(issue_date),
            "nextUpdate": _timestamp(next_update),
            "fmspc": platform.FMSPC.hex().upper(),
            "pceId": platform.PCE_ID.hex().upper(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": platform.TCB_EVALUATION_DATA_NUMBER,
            "tdxModule": module,
            "tdxModuleIdentities": [
                {"id": f"TDX_{platform.TEE_TCB_SVN[1]:02X}", **module, "tcbLevels": [module_level]}
            ],
            "tcbLevels": [platform_level],
        }
    )


def qe_identity_json(issue_date: datetime, next_update: datetime) -> bytes:
    """QE Identity of the simulated TD Quoting Enclave, UpToDate at its ISV SVN."""
    return _compact(
        {
            "id": QE_IDENTITY_ID,
            "version": QE_IDENTITY_VERSION,
            "issueDate": _timestamp(issue_date),
            "nextUpdate": _timestamp(next_update),
            "tcbEvaluationDataNumber": platform.TCB_EVALUATION_DATA_NUMBER,
            "miscselect": f"{platform.QE_MISCSELECT:08X}",
            "miscselectMask": "FFFFFFFF",
            "attributes": _QE_ATTRIBUTES.hex().upper(),
            "attributesMask": _QE_ATTRIBUTES_MASK.hex().upper(),
            "mrsigner": platform.QE_MRSIGNER.hex().upper(),
            "isvprodid": platform.QE_ISVPRODID,
            "tcbLevels": [_level({"isvsvn": platform.QE_ISVSVN})],
        }
    )


def bundle_json(
    authority: SimulationAuthority, issue_date: datetime | None = None, next_update: datetime | None = None
) -> bytes:
    """The collateral bundle for `authority`, current from `issue_date` (default now) to
    `next_update` (default 30 days later)."""
    issue_date = issue_date or datetime.now(UTC)
    next_update = next_update or issue_date + DEFAULT_VALIDITY
    tcb_info = tcb_info_json(issue_date, next_update)
    qe_identity = qe_identity_json(issue_date, next_update)
    signing_chain = pem(authority.tcb_signing_cert, authority.root_cert).decode()
    key = authority.tcb_signing_key
    bundle = {
        "pck_crl_issuer_chain": pem(authority.pck_ca_cert, authority.root_cert).decode(),
        "root_ca_crl": authority.root_ca_crl.public_bytes(Encoding.DER).hex(),
        "pck_crl": authority.pck_crl.public_bytes(Encoding.DER).hex(),
        "tcb_info_issuer_chain": signing_chain,
        "tcb_info": tcb_info.decode(),
        "tcb_info_signature": sign_p256(key, tcb_info).hex(),
        "qe_identity_issuer_chain": signing_chain,
        "qe_identity": qe_identity.decode(),
        "qe_identity_signature": sign_p256(key, qe_identity).hex(),
    }
    return json.dumps(bundle, indent=2).encode()


def _level(tcb: dict[str, Any]) -> dict[str, Any]:
    return {"tcb": tcb, "tcbDate": platform.TCB_DATE, "tcbStatus": UP_TO_DATE}


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _timestamp(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("collateral dates must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
