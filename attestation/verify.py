"""`teeplane verify URL`: check a running service as an outsider.

Fetch fresh evidence for our own nonce from the service's EPS, check that its report data binds
that nonce (and the runtime data the service presents), appraise it under the pinned root, replay
its event log, and compare every measurement with reference values: given directly, or those of
a baseline whose signature (pinned BGS keys) and transparency-log inclusion (pinned log key) are
verified first. The baseline bundle is one we hold, or the one the service itself serves.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from securesystemslib.signer import Key

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.binding import b64url_decode, check_binding
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.eps.models import EvidenceResponse
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError
from teeplane.attestation.eventlog import parse_event_log
from teeplane.attestation.reference import ReferenceValues, record_reference
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import TrustAnchor
from teeplane.baseline.bundle import BaselineBundle, parse_bundle
from teeplane.baseline.tlog.note import Verifier
from teeplane.baseline.verify import verify_bundle
from teeplane.errors import TeeplaneError


@dataclass(frozen=True)
class BaselineTrust:
    """How to judge measurements by a baseline: the BGS signing keys and the log key we pin, and the
    bundle to use (None: the one the service serves with its evidence)."""

    signer_keys: Sequence[Key]
    log_key: Verifier
    bundle: BaselineBundle | None = None


def verify_service(
    eps: EpsClient,
    *,
    anchor: TrustAnchor,
    at: datetime,
    policy: Policy,
    reference: ReferenceValues | None,
    collateral: Collateral | None = None,
    baseline: BaselineTrust | None = None,
) -> Appraisal:
    """Appraise fresh evidence from `eps` for a nonce of our own, judged by `reference` or by the
    verified `baseline`."""
    nonce = secrets.token_bytes(32)
    response = eps.evidence(nonce)
    if response.tee != "tdx":
        raise EvidenceFormatError(Code.QUOTE_UNSUPPORTED_TEE_TYPE, f"verify supports TDX services, not {response.tee}")
    quote = parse_quote(b64url_decode(response.evidence, "evidence"))
    if collateral is None and response.collateral:
        collateral = load_bundle(b64url_decode(response.collateral, "collateral"))
    event_log = parse_event_log(b64url_decode(response.event_log, "event_log")) if response.event_log else None
    appraisal = appraise_quote(quote, collateral, anchor, at, policy, event_log=event_log)
    try:
        check_binding(quote.body.report_data, nonce, response.runtime_data)
        appraisal.passed("binding", "report_data = SHA-512(our nonce || JCS(runtime_data))")
    except AppraisalError as error:
        appraisal.failed("binding", error)
    if baseline is not None:
        reference = _baseline_reference(appraisal, baseline, response, at)
        if reference is None:
            return appraisal
    if reference is not None:
        record_reference(appraisal, reference, event_log)
    else:
        appraisal.refuse(
            "reference.values",
            AppraisalError(
                Code.POLICY_MEASUREMENT_MISMATCH,
                "no reference values were given: measurements are shown but not judged",
                where="reference",
            ),
        )
    return appraisal


def _baseline_reference(
    appraisal: Appraisal, trust: BaselineTrust, response: EvidenceResponse, at: datetime
) -> ReferenceValues | None:
    """The reference values of the verified baseline (recording the check), or None if it failed."""
    try:
        if trust.bundle is not None:
            bundle = trust.bundle
        elif response.log_proof is not None:
            bundle = parse_bundle(response.log_proof)
        else:
            raise AppraisalError(
                Code.POLICY_MEASUREMENT_MISMATCH,
                "the service serves no baseline bundle: give one (--baseline)",
                where="log_proof",
            )
        verified = verify_bundle(bundle, trust.signer_keys, trust.log_key, at)
        if response.baseline_id is not None and response.baseline_id != verified.document.id:
            raise AppraisalError(
                Code.POLICY_MEASUREMENT_MISMATCH,
                f"the service says baseline {response.baseline_id}, the bundle is {verified.document.id}",
                where="baseline_id",
            )
    except TeeplaneError as error:
        appraisal.failed("baseline", error)
        return None
    appraisal.passed(
        "baseline",
        f"{verified.document.id} signed by {', '.join(verified.signers)}, in {trust.log_key.name} at index "
        f"{verified.index} (tree size {verified.checkpoint.size})",
    )
    return verified.document.statement.predicate.measurements.reference_values(verified.document.id)
