"""`teeplane verify URL`: check a running service as an outsider.

Fetch fresh evidence for our own nonce from the service's EPS, check that its report data binds
that nonce (and the runtime data the service presents), appraise it under the pinned root, replay
its event log, and compare every measurement with the reference values we were given.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.binding import b64url_decode, check_binding
from teeplane.attestation.eps.client import EpsClient
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError
from teeplane.attestation.eventlog import parse_event_log
from teeplane.attestation.reference import ReferenceValues, record_reference
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import TrustAnchor


def verify_service(
    eps: EpsClient,
    *,
    anchor: TrustAnchor,
    at: datetime,
    policy: Policy,
    reference: ReferenceValues | None,
    collateral: Collateral | None = None,
) -> Appraisal:
    """Appraise fresh evidence from `eps` for a nonce of our own."""
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
