"""Verifying a workload's baseline before anything is registered or deployed for it.

The operator depends only on `BaselineVerifier`. `BgsBaselines` is the implementation for now: it
fetches the baseline record from the BGS (`GET /v1/baselines/{ref}`), checks that the DSSE payload is
the baseline asked for (its SHA-256 is the baseline ID; or its name@version) and reads the expected
measurements from its predicate. Checking the DSSE signature under pinned keys and the inclusion
proof under the pinned log key is the BGS client's job (`teeplane.baseline`), which plugs in here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import ValidationError

from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.remote import RemoteError, ServiceClient, first_error

ID_PREFIX = "sha256:"


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


class BgsBaselines(ServiceClient):
    """Baselines from the BGS, checked against the reference that names them."""

    service = "BGS"

    def verify(self, reference: str) -> VerifiedBaseline:
        """The baseline `reference` names, or BaselineError."""
        try:
            record = self._json("GET", f"/v1/baselines/{quote(reference, safe='@:')}")
        except RemoteError as error:
            if error.http_status == 404:
                raise BaselineError(
                    "BaselineNotFound", f"the BGS has no baseline {reference}", transient=False
                ) from None
            raise BaselineError("BgsUnavailable", str(error), transient=True) from None
        return baseline_from_record(reference, record)


def baseline_from_record(reference: str, record: Any) -> VerifiedBaseline:
    """The baseline in a BGS record, checked to be the one `reference` names; or BaselineError."""
    try:
        payload = base64.b64decode(record["envelope"]["payload"], validate=True)
        predicate = json.loads(payload)["predicate"]
        measurements = ExpectedMeasurements.model_validate(predicate["measurements"])
        measurements.reference_values()  # what RAS will be given must be valid reference values
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        message = first_error(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        raise BaselineError("BaselineMalformed", f"baseline {reference}: {message}", transient=False) from None
    baseline_id = ID_PREFIX + hashlib.sha256(payload).hexdigest()
    if reference.startswith(ID_PREFIX):
        if baseline_id != reference:
            raise BaselineError(
                "BaselineMismatch", f"asked for {reference}, the BGS sent {baseline_id}", transient=False
            )
    elif f"{predicate.get('name')}@{predicate.get('version')}" != reference:
        named = f"{predicate.get('name')}@{predicate.get('version')}"
        raise BaselineError("BaselineMismatch", f"asked for {reference}, the BGS sent {named}", transient=False)
    return VerifiedBaseline(baseline_id, measurements)
