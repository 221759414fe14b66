"""DCAP collateral held by RAS, per FMSPC, chosen by its validity at the evaluation time.

Collateral is loaded from bundle JSON files (the dcap-qvl format) or added at run time. No
network fetch is needed; a PCS fetcher can be added as configuration later.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from teeplane.attestation.tdx.collateral import Collateral, load_bundle
from teeplane.io import read_file


class CollateralCache:
    """Collateral by FMSPC; for a quote, the newest bundle current at the evaluation time."""

    def __init__(self) -> None:
        self._by_fmspc: dict[bytes, list[Collateral]] = {}
        self._lock = threading.Lock()

    def add(self, collateral: Collateral) -> bytes:
        """Add a bundle (validated); return its FMSPC."""
        fmspc = collateral.tcb_info_model.fmspc
        collateral.qe_identity_model  # noqa: B018 - validate before it is served
        with self._lock:
            bundles = self._by_fmspc.setdefault(fmspc, [])
            if collateral not in bundles:
                bundles.append(collateral)
                bundles.sort(key=lambda c: c.tcb_info_model.issue_date, reverse=True)
        return fmspc

    def load_directory(self, directory: Path) -> int:
        """Add every `*.json` bundle in `directory`; return how many."""
        paths = sorted(directory.glob("*.json"))
        for path in paths:
            self.add(load_bundle(read_file(path, "collateral bundle")))
        return len(paths)

    def for_fmspc(self, fmspc: bytes, at: datetime) -> Collateral | None:
        """The newest collateral for `fmspc` current at `at`, else the newest (which will be refused
        as expired, with the reason), else None."""
        with self._lock:
            bundles = list(self._by_fmspc.get(fmspc, ()))
        for collateral in bundles:
            info = collateral.tcb_info_model
            if info.issue_date <= at <= info.next_update:
                return collateral
        return bundles[0] if bundles else None
