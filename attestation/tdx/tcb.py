"""TCB level selection and status folding, as Intel's Quote Verification Library does it.

Platform level: the first TCB Info level whose 16 SGX component SVNs and PCESVN are all <= the
PCK certificate's, and whose 16 TDX component SVNs are all <= the quote's TEE_TCB_SVN (when the
TDX module major version, TEE_TCB_SVN[1], is non-zero, the first two bytes are skipped: the
module is judged by its own identity instead). No level: TCB_NOT_SUPPORTED.

TDX module: with a non-zero major version and `tdxModuleIdentities` present, the identity
`TDX_<major, 2 hex digits>` gives the signer, attributes and levels keyed by TEE_TCB_SVN[0].

Folding (module status, then QE status, into the platform status): OutOfDate turns UpToDate and
SWHardeningNeeded into OutOfDate, and ConfigurationNeeded and ConfigurationAndSWHardeningNeeded
into OutOfDateConfigurationNeeded; Revoked always wins.
"""

from __future__ import annotations

from collections.abc import Sequence

from teeplane.attestation.tdx.collateral import IsvTcbLevel, TcbInfo, TcbLevel, TdxModule

UP_TO_DATE = "UpToDate"
SW_HARDENING_NEEDED = "SWHardeningNeeded"
CONFIGURATION_NEEDED = "ConfigurationNeeded"
CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE = "OutOfDate"
OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
REVOKED = "Revoked"
TCB_NOT_SUPPORTED = "TCB_NOT_SUPPORTED"

_OUT_OF_DATE_FOLD = {
    UP_TO_DATE: OUT_OF_DATE,
    SW_HARDENING_NEEDED: OUT_OF_DATE,
    CONFIGURATION_NEEDED: OUT_OF_DATE_CONFIGURATION_NEEDED,
    CONFIGURATION_AND_SW_HARDENING_NEEDED: OUT_OF_DATE_CONFIGURATION_NEEDED,
}


def match_platform_level(
    tcb_info: TcbInfo, sgx_svns: Sequence[int], pcesvn: int, tee_tcb_svn: bytes
) -> TcbLevel | None:
    """The first TCB level the platform meets, or None (TCB_NOT_SUPPORTED)."""
    tdx_start = 2 if tee_tcb_svn[1] > 0 else 0
    for level in tcb_info.tcb_levels:
        if pcesvn < level.tcb.pcesvn:
            continue
        if any(have < need for have, need in zip(sgx_svns, level.sgx_svns, strict=True)):
            continue
        tdx = level.tdx_svns
        if len(tdx) != 16 or any(tee_tcb_svn[i] < tdx[i] for i in range(tdx_start, 16)):
            continue
        return level
    return None


def match_isv_level(levels: Sequence[IsvTcbLevel], isvsvn: int) -> IsvTcbLevel | None:
    """The first level whose ISV SVN is <= `isvsvn` (QE identity, TDX module identity)."""
    for level in levels:
        if level.tcb.isvsvn <= isvsvn:
            return level
    return None


def tdx_module_identity(tcb_info: TcbInfo, tee_tcb_svn: bytes) -> TdxModule | None:
    """The TDX module identity that judges this quote's module, or None if TCB Info has none."""
    major = tee_tcb_svn[1]
    if major > 0 and tcb_info.tdx_module_identities:
        wanted = f"TDX_{major:02X}"
        return next((m for m in tcb_info.tdx_module_identities if m.id.upper() == wanted), None)
    return tcb_info.tdx_module


def fold_status(platform: str, other: str) -> str:
    """Fold a module or QE status into the platform status."""
    if REVOKED in (platform, other):
        return REVOKED
    if other == OUT_OF_DATE:
        return _OUT_OF_DATE_FOLD.get(platform, platform)
    return platform


def masked_equal(observed: bytes, expected: bytes, mask: bytes) -> bool:
    """observed & mask == expected, byte by byte, as Intel's QVL compares (lengths must agree)."""
    if not len(observed) == len(expected) == len(mask):
        return False
    return int.from_bytes(observed) & int.from_bytes(mask) == int.from_bytes(expected)
