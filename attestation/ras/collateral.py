"""DCAP collateral held by RAS, per FMSPC, chosen by its validity at the evaluation time.

Collateral is loaded from bundle JSON files (the dcap-qvl format) or added at run time. A
fetcher (Intel PCS or a PCCS, `pcs.PcsFetcher`) is optional configuration: without one, files
are all there is. With one, a quote whose FMSPC has no file collateral current at the
evaluation time gets fetched collateral, per FMSPC and PCK CA:

* fetched on demand, by one caller at a time per FMSPC and CA (concurrent callers wait for that
  fetch and share its outcome);
* kept until the earliest nextUpdate of its TCB Info, QE Identity and CRLs, judged at the
  evaluation time, then fetched again when a quote needs it (no background timer: an evaluation
  time may be fixed, and a quiet FMSPC costs nothing);
* at most one fetch per `retry_interval` for each FMSPC and CA: in between, a failure is
  reported again, and collateral that is still out of date is used as it is (and refused by the
  appraisal with the reason);
* collateral whose signatures or chains do not verify under the anchor (time aside) is handed
  to the appraisal at hand, which refuses it with the specific code, and counts as out of date.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from teeplane.attestation.certs import load_crl
from teeplane.attestation.ras.pcs import CollateralFetchError
from teeplane.attestation.tdx.collateral import Collateral, load_bundle
from teeplane.attestation.tdx.prepared import prepare_collateral
from teeplane.attestation.trust import TrustAnchor, intel_root
from teeplane.io import read_file

DEFAULT_RETRY_INTERVAL = timedelta(minutes=1)


class CollateralSource(Protocol):
    """Where collateral is fetched from (`pcs.PcsFetcher`)."""

    def fetch(self, fmspc: bytes, ca: str) -> Collateral:
        """The collateral of `fmspc` and the PCK CA `ca`, or CollateralFetchError."""
        ...


@dataclass(frozen=True, slots=True)
class _Fetched:
    """The outcome of one fetch: collateral (and until when it is current), or the error."""

    collateral: Collateral | None
    error: CollateralFetchError | None
    fetched_at: float
    current_until: datetime | None = None

    def current_at(self, at: datetime) -> bool:
        return self.current_until is not None and at <= self.current_until


class CollateralCache:
    """Collateral by FMSPC; for a quote, the newest bundle current at the evaluation time, else
    (with a fetcher) fetched collateral."""

    def __init__(
        self,
        fetcher: CollateralSource | None = None,
        *,
        anchor: TrustAnchor | None = None,
        retry_interval: timedelta = DEFAULT_RETRY_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_fmspc: dict[bytes, list[Collateral]] = {}
        self._lock = threading.Lock()
        self._fetcher = fetcher
        self._anchor = anchor or intel_root()
        self._retry_seconds = retry_interval.total_seconds()
        self._monotonic = monotonic
        self._fetched: dict[tuple[bytes, str], _Fetched] = {}
        self._flights: dict[tuple[bytes, str], Future[Collateral]] = {}

    @property
    def fetches(self) -> bool:
        """Whether looking collateral up may fetch it (a PCS fetcher is configured): it can block."""
        return self._fetcher is not None

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
            if _current(collateral, at):
                return collateral
        return bundles[0] if bundles else None

    def for_platform(self, fmspc: bytes, ca: str | None, at: datetime) -> Collateral | None:
        """Collateral for a quote of `fmspc` whose PCK was issued by the PCK CA `ca` (`platform` or
        `processor`; None for a CA a PCS does not serve): as `for_fmspc` when a file bundle is current
        at `at` or nothing can be fetched, else fetched (see the module docstring). Raises
        CollateralFetchError when the fetch fails."""
        found = self.for_fmspc(fmspc, at)
        if self._fetcher is None or ca is None or (found is not None and _current(found, at)):
            return found
        return self._fetch(fmspc, ca, at)

    def _fetch(self, fmspc: bytes, ca: str, at: datetime) -> Collateral:
        key = (fmspc, ca)
        with self._lock:
            last = self._fetched.get(key)
            if last is not None and (last.current_at(at) or self._monotonic() - last.fetched_at < self._retry_seconds):
                if last.error is not None:
                    raise last.error
                assert last.collateral is not None
                return last.collateral
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if leader:
            self._run(key, flight)
        return flight.result()

    def _run(self, key: tuple[bytes, str], flight: Future[Collateral]) -> None:
        """Fetch for `key` and publish the outcome to everyone waiting on `flight`."""
        assert self._fetcher is not None
        try:
            collateral = self._fetcher.fetch(*key)
            outcome = _Fetched(collateral, None, self._monotonic(), self._current_until(collateral))
        except CollateralFetchError as error:
            outcome = _Fetched(None, error, self._monotonic())
        except BaseException as error:  # a bug: the waiters get it too rather than waiting forever
            with self._lock:
                del self._flights[key]
            flight.set_exception(error)
            raise
        with self._lock:
            self._fetched[key] = outcome
            del self._flights[key]
        if outcome.error is not None:
            flight.set_exception(outcome.error)
        else:
            assert outcome.collateral is not None
            flight.set_result(outcome.collateral)

    def _current_until(self, collateral: Collateral) -> datetime | None:
        """The earliest nextUpdate of the collateral's parts, or None if it does not verify under the
        anchor (signatures, chains, CRL issuers; time aside)."""
        prepared = prepare_collateral(collateral, self._anchor)
        steps = (*prepared.steps, prepared.root_ca_crl_step)
        if any(step.error is not None for step in steps) or prepared.pck_crl_error is not None:
            return None
        return min(_next_updates(collateral))


def _current(collateral: Collateral, at: datetime) -> bool:
    info = collateral.tcb_info_model
    return info.issue_date <= at <= info.next_update


def _next_updates(collateral: Collateral) -> Iterable[datetime]:
    yield collateral.tcb_info_model.next_update
    yield collateral.qe_identity_model.next_update
    for crl in (collateral.pck_crl, collateral.root_ca_crl):
        next_update = load_crl(crl, "CRL").next_update_utc if crl is not None else None
        if next_update is not None:
            yield next_update
