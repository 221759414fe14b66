"""Verifying a workload's baseline before anything is registered or deployed for it.

The operator depends only on `BaselineVerifier`. `BgsBaselines` fetches the baseline record from the
BGS (`GET /v1/baselines/{ref}`) and verifies it as an offline verifier would (`teeplane.baseline.verify`):
the DSSE signature under the pinned signer keys, the statement, its validity window, and its
inclusion in the transparency log under the pinned log key. Only then is the payload checked to be
the baseline asked for (its ID, or its name@version) and its measurements read.

A verified baseline is immutable (its ID names its content), so verifications are kept for
`CACHE_SECONDS`: a burst of workloads on one baseline costs one fetch, while a baseline that
expires or whose name@version is published anew is noticed within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from securesystemslib.signer import Key

from teeplane.baseline.bundle import BaselineBundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.service.models import BaselineRecord
from teeplane.baseline.tlog.note import Verifier
from teeplane.baseline.verify import verify_bundle
from teeplane.errors import TeeplaneError
from teeplane.remote import RemoteError, parse_response
from teeplane.tls import Verify

ID_PREFIX = "sha256:"
#: Seconds a verified baseline is reused without asking the BGS again.
CACHE_SECONDS = 60.0
#: Condition reasons for the stages of verification, by the prefix of the error code.
_REASONS = {
    "dsse.": "SignatureNotVerified",
    "baseline.not_logged": "InclusionNotProven",
    "baseline.expired": "BaselineNotValid",
    "baseline.not_yet_valid": "BaselineNotValid",
    "baseline.": "BaselineMalformed",
    "service.bad_response": "BaselineMalformed",
}
_NOT_PROVEN = "InclusionNotProven"  # note.*, checkpoint.*, tlog_proof.*, merkle.*


@dataclass(frozen=True)
class VerifiedBaseline:
    """A baseline that verified: its ID and the measurements a TEE booted from it reports."""

    id: str
    measurements: ExpectedMeasurements


class BaselineError(Exception):
    """A baseline that could not be verified: a condition reason, and whether trying again may help."""

    def __init__(self, reason: str, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.transient = transient


class BaselineVerifier(Protocol):
    """Resolves a baseline reference (ID or name@version) to a verified baseline, or raises BaselineError."""

    def verify(self, reference: str) -> VerifiedBaseline: ...

    def cached(self, reference: str) -> VerifiedBaseline | None:
        """The baseline if `verify` would answer it without asking the BGS (no blocking), else None."""
        ...


class BgsBaselines(BgsClient):
    """Baselines from the BGS, verified under pinned keys and checked against the reference that names them."""

    def __init__(
        self,
        base_url: str,
        signer_keys: Sequence[Key],
        log_key: Verifier,
        *,
        verify: Verify = True,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(base_url, verify=verify, timeout=timeout)
        self._signer_keys = list(signer_keys)
        self._log_key = log_key
        self._clock = clock
        self._verified: dict[str, tuple[float, VerifiedBaseline]] = {}  # reference -> (until, baseline)
        self._flights: dict[str, threading.Lock] = {}  # one lock per reference
        self._lock = threading.Lock()

    def verify(self, reference: str) -> VerifiedBaseline:
        """The baseline `reference` names, verified; or BaselineError. Callers asking for one reference
        at once share one fetch (a burst of workloads on a new baseline fetches it once)."""
        with self._lock:
            flight = self._flights.setdefault(reference, threading.Lock())
        with flight:
            now = self._clock()
            cached = self.cached(reference)
            if cached is not None:
                return cached
            verified = self._fetch_and_verify(reference)
            with self._lock:
                self._verified = {ref: kept for ref, kept in self._verified.items() if now < kept[0]}
                self._verified[reference] = (now + CACHE_SECONDS, verified)
            return verified

    def cached(self, reference: str) -> VerifiedBaseline | None:
        """The baseline verified less than CACHE_SECONDS ago, or None."""
        with self._lock:
            cached = self._verified.get(reference)
        return cached[1] if cached is not None and self._clock() < cached[0] else None

    def _fetch_and_verify(self, reference: str) -> VerifiedBaseline:
        try:
            body = self._json("GET", f"/v1/baselines/{quote(reference, safe='@:')}")
        except RemoteError as error:
            if error.http_status in (404, 422):
                message = f"the BGS has no baseline {reference}"
                raise BaselineError("BaselineNotFound", message, transient=False) from None
            raise BaselineError("BgsUnavailable", str(error), transient=True) from None
        try:
            record = parse_response(BaselineRecord, body, self.service)
            bundle = BaselineBundle(envelope=record.envelope, proof=record.proof)
            verified = verify_bundle(bundle, self._signer_keys, self._log_key, datetime.now(UTC))
        except TeeplaneError as error:
            raise BaselineError(reason_for(error.code), f"baseline {reference}: {error}", transient=False) from None
        document = verified.document
        predicate = document.statement.predicate
        named = document.id if reference.startswith(ID_PREFIX) else f"{predicate.name}@{predicate.version}"
        if named != reference:
            raise BaselineError("BaselineMismatch", f"asked for {reference}, the BGS sent {named}", transient=False)
        return VerifiedBaseline(document.id, predicate.measurements)


def reason_for(code: str) -> str:
    """The condition reason for a verification error code: which stage of verification failed."""
    return next((reason for prefix, reason in _REASONS.items() if code.startswith(prefix)), _NOT_PROVEN)
