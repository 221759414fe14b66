"""TCB level selection and status folding (Intel QVL rules), on constructed TCB Info."""

from __future__ import annotations

from typing import Any

import pytest

from teeplane.attestation.tdx import tcb
from teeplane.attestation.tdx.collateral import IsvTcbLevel, TcbInfo


def level(sgx: int, pcesvn: int, tdx: list[int], status: str, advisories: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "tcb": {
            "sgxtcbcomponents": [{"svn": sgx}] * 16,
            "pcesvn": pcesvn,
            "tdxtcbcomponents": [{"svn": s} for s in tdx + [0] * (16 - len(tdx))],
        },
        "tcbDate": "2024-01-01T00:00:00Z",
        "tcbStatus": status,
        "advisoryIDs": list(advisories),
    }


def tcb_info(*levels: dict[str, Any], **extra: Any) -> TcbInfo:
    return TcbInfo.model_validate(
        {
            "id": "TDX", "version": 3, "issueDate": "2025-01-01T00:00:00Z", "nextUpdate": "2025-02-01T00:00:00Z",
            "fmspc": "00806f050000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 17,
            "tcbLevels": list(levels), **extra,
        }
    )  # fmt: skip


INFO = tcb_info(
    level(5, 13, [6, 1, 3], "UpToDate"),
    level(5, 13, [4, 1, 2], "SWHardeningNeeded", ("INTEL-SA-1",)),
    level(3, 11, [2, 0, 2], "OutOfDate", ("INTEL-SA-2",)),
)


def svn(*first: int) -> bytes:
    return bytes(first) + bytes(16 - len(first))


@pytest.mark.parametrize(
    ("sgx", "pcesvn", "tee_tcb_svn", "expected"),
    [
        (5, 13, svn(6, 1, 3), "UpToDate"),
        (5, 13, svn(6, 1, 2), "SWHardeningNeeded"),  # TDX component 2 too low for level 1
        (5, 12, svn(6, 1, 3), "OutOfDate"),  # PCESVN too low for levels 1 and 2
        (4, 13, svn(6, 1, 3), "OutOfDate"),  # SGX components too low
        (2, 13, svn(6, 1, 3), None),  # below every level: TCB_NOT_SUPPORTED
        (5, 13, svn(0, 1, 3), "UpToDate"),  # module major > 0: bytes 0 and 1 judged by module identity
        (5, 13, svn(2, 0, 3), "OutOfDate"),  # major 0: all 16 bytes compared, byte 0 too
        (5, 13, svn(0, 0, 3), None),
    ],
)
def test_platform_level(sgx: int, pcesvn: int, tee_tcb_svn: bytes, expected: str | None) -> None:
    found = tcb.match_platform_level(INFO, [sgx] * 16, pcesvn, tee_tcb_svn)
    assert (found.status if found else None) == expected


@pytest.mark.parametrize(
    ("platform", "other", "folded"),
    [
        ("UpToDate", "UpToDate", "UpToDate"),
        ("UpToDate", "OutOfDate", "OutOfDate"),
        ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
        ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("OutOfDateConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
        ("ConfigurationNeeded", "UpToDate", "ConfigurationNeeded"),
        ("UpToDate", "Revoked", "Revoked"),
        ("Revoked", "UpToDate", "Revoked"),
    ],
)
def test_fold_status(platform: str, other: str, folded: str) -> None:
    assert tcb.fold_status(platform, other) == folded


def test_isv_level_is_the_first_at_or_below() -> None:
    levels = [
        IsvTcbLevel.model_validate({"tcb": {"isvsvn": n}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": s})
        for n, s in ((8, "UpToDate"), (6, "OutOfDate"), (2, "Revoked"))
    ]
    assert [(lv.status if (lv := tcb.match_isv_level(levels, n)) else None) for n in (9, 8, 7, 6, 3, 2, 1)] == [
        "UpToDate", "UpToDate", "OutOfDate", "OutOfDate", "Revoked", "Revoked", None,
    ]  # fmt: skip


def test_module_identity_by_major_version() -> None:
    module = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
    info = tcb_info(
        level(5, 13, [6, 1, 3], "UpToDate"),
        tdxModule=module,
        tdxModuleIdentities=[{**module, "id": "TDX_01", "tcbLevels": []}, {**module, "id": "TDX_03"}],
    )
    assert tcb.tdx_module_identity(info, svn(6, 1)).id == "TDX_01"  # type: ignore[union-attr]
    assert tcb.tdx_module_identity(info, svn(6, 3)).id == "TDX_03"  # type: ignore[union-attr]
    assert tcb.tdx_module_identity(info, svn(6, 2)) is None
    assert tcb.tdx_module_identity(info, svn(6, 0)) is info.tdx_module


def test_masked_equal_follows_intel() -> None:
    assert tcb.masked_equal(bytes.fromhex("11ff"), bytes.fromhex("1100"), bytes.fromhex("ff00"))
    assert not tcb.masked_equal(bytes.fromhex("10ff"), bytes.fromhex("1100"), bytes.fromhex("ff00"))
    assert not tcb.masked_equal(bytes.fromhex("11"), bytes.fromhex("1100"), bytes.fromhex("ff00"))
