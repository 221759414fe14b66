"""The RAS attestation pipeline, free of HTTP: challenge, appraisal, reference values, token.

`/v1/attest` in order: the nonce (MAC, expiry, single use), the workload's reference values and
policy, the evidence (TDX quote with DCAP collateral, or SEV-SNP report), the binding of nonce
and runtime data into report_data, the reference values, the policy, and finally the token.
Every refusal is collected with its code and claim path; any refusal means no token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from teeplane import __version__
from teeplane.attestation.appraisal import Appraisal
from teeplane.attestation.binding import RULES, TEE_KEY_MEMBER, b64url_decode, check_binding
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError
from teeplane.attestation.eventlog import EventLog, parse_event_log
from teeplane.attestation.keyring import KeyRing
from teeplane.attestation.nonce import Challenge, NonceIssuer
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.models import AttestRequest
from teeplane.attestation.ras.pcs import CollateralFetchError, pck_ca_type
from teeplane.attestation.ras.store import POLICY, REFERENCE_VALUES, RasStore
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues, record_reference
from teeplane.attestation.snp.appraise import appraise_snp
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral
from teeplane.attestation.tdx.prepared import PreparedChain, prepare_chain
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.token import Workload, build_claims, sign
from teeplane.attestation.trust import TrustAnchor, anchor_for_chain, intel_root
from teeplane.errors import RefusedError, TeeplaneError

KEYRING_SETTING = "signing-keyring"
KEYRING_RELOAD = timedelta(seconds=5)


class AttestationRefusedError(RefusedError):
    """Evidence was read and refused; `errors` lists every failed check with its claim path."""

    def __init__(self, errors: list[TeeplaneError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, where=first.where)
        self.errors = errors

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """Problem details naming the first failure, with every failure under `errors`."""
        problem = super().to_problem(instance)
        problem["errors"] = [e.to_dict() for e in self.errors]
        return problem


class UnknownWorkloadError(RefusedError):
    """No reference values are registered for the workload."""

    def __init__(self, workload: str) -> None:
        super().__init__(
            Code.POLICY_UNKNOWN_WORKLOAD.value, f"no reference values are registered for {workload}", where="workload"
        )


@dataclass
class RasConfig:
    """What a RAS instance trusts and how it signs."""

    issuer: str = "https://ras.teeplane.local"
    audience: str = "teeplane-tks"
    signing_alg: str = "ES256"
    simulation_anchor: TrustAnchor | None = None
    amd_chains: tuple[bytes, ...] = ()
    #: Accept recorded evidence whose report data cannot bind a fresh nonce (replay and testing
    #: only, with a fixed clock): the binding is reported as not enforced and tokens say `replayed`.
    replay_recorded_evidence: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Issued:
    """A token and what it was issued for."""

    token: str
    expires_at: datetime
    appraisal: Appraisal


class RemoteAttestationService:
    """Challenges, attestation, reference values and policies, and the signing keyring."""

    def __init__(self, store: RasStore, collateral: CollateralCache, config: RasConfig) -> None:
        self.store = store
        self.collateral = collateral
        self.config = config
        self.nonces = NonceIssuer(store.nonce_key())
        anchors = [intel_root()]
        if config.simulation_anchor is not None:
            anchors.append(config.simulation_anchor)
        self.anchors = tuple(anchors)
        self._documents: dict[tuple[str, str], ReferenceValues | AppraisalPolicy | None] = {}
        self._documents_version = -1
        self._keyring_lock = threading.Lock()
        self._keyring, self._keyring_loaded = self._load_keyring(), time.monotonic()

    # --- keys ------------------------------------------------------------------------------------

    def _load_keyring(self) -> KeyRing:
        raw = self.store.setting(KEYRING_SETTING, lambda: KeyRing.generate(self.config.signing_alg).to_json().encode())
        return KeyRing.from_json(raw.decode())

    def keyring(self) -> KeyRing:
        """The signing keyring, re-read from the store every few seconds (another replica may rotate)."""
        with self._keyring_lock:
            if time.monotonic() - self._keyring_loaded > KEYRING_RELOAD.total_seconds():
                self._keyring, self._keyring_loaded = self._load_keyring(), time.monotonic()
            return self._keyring

    def rotate_keys(self) -> str:
        """Make a new signing key current; old keys stay published until their tokens expire."""
        now = self.config.clock()
        with self._keyring_lock:
            keyring = self._load_keyring()
            keyring.rotate(now)
            keyring.prune(now)
            self.store.replace_setting(KEYRING_SETTING, keyring.to_json().encode())
            self._keyring, self._keyring_loaded = keyring, time.monotonic()
            return keyring.current.kid

    def jwks(self) -> dict[str, Any]:
        """The public signing keys."""
        return self.keyring().jwks()

    # --- reference values and policies ------------------------------------------------------------

    def put_reference_values(self, workload: str, reference: ReferenceValues) -> bool:
        """Register a workload's reference values; True if they replaced earlier ones."""
        replaced = self.store.put_document(REFERENCE_VALUES, workload, reference.model_dump_json(), self.config.clock())
        self._documents.clear()
        return replaced

    def reference_values(self, workload: str) -> ReferenceValues | None:
        """A workload's reference values."""
        found = self._document(REFERENCE_VALUES, workload, ReferenceValues.model_validate_json)
        assert found is None or isinstance(found, ReferenceValues)
        return found

    def put_policy(self, workload: str, policy: AppraisalPolicy) -> bool:
        """Set a workload's appraisal policy; True if it replaced an earlier one."""
        replaced = self.store.put_document(POLICY, workload, policy.model_dump_json(), self.config.clock())
        self._documents.clear()
        return replaced

    def policy(self, workload: str) -> AppraisalPolicy:
        """A workload's appraisal policy, or the default (UpToDate only, no debug, no simulation)."""
        found = self._document(POLICY, workload, AppraisalPolicy.model_validate_json)
        assert found is None or isinstance(found, AppraisalPolicy)
        return found or AppraisalPolicy()

    def delete_document(self, kind: str, workload: str) -> bool:
        """Delete a workload's reference values or policy; True if there was one."""
        deleted = self.store.delete_document(kind, workload)
        self._documents.clear()
        return deleted

    def _document(
        self, kind: str, workload: str, parse: Callable[[str], ReferenceValues | AppraisalPolicy]
    ) -> ReferenceValues | AppraisalPolicy | None:
        """A stored document, parsed once and kept until any replica changes the store."""
        version = self.store.data_version()
        if version != self._documents_version:
            self._documents.clear()
            self._documents_version = version
        key = (kind, workload)
        if key not in self._documents:
            body = self.store.get_document(kind, workload)
            self._documents[key] = parse(body) if body is not None else None
        return self._documents[key]

    # --- attestation ------------------------------------------------------------------------------

    def challenge(self) -> Challenge:
        """A single-use nonce (the store's upkeep forgets used nonces once they have expired)."""
        return self.nonces.issue(self.config.clock())

    def attest(self, request: AttestRequest) -> Issued:
        """Run the whole pipeline; raise AttestationRefusedError (or a typed input error) or issue a token."""
        now = self.config.clock()
        nonce = b64url_decode(request.nonce, "nonce")
        self.nonces.check(nonce, now, self.store)
        workload = request.workload.key
        reference = self.reference_values(workload)
        if reference is None:
            raise UnknownWorkloadError(workload)
        policy = self.policy(workload)
        key_member = TEE_KEY_MEMBER[request.binding]
        tee_jwk = request.runtime_data.get(key_member)
        if not isinstance(tee_jwk, dict):
            raise EvidenceFormatError(
                Code.RUNTIME_DATA_MALFORMED,
                f"runtime_data.{key_member} must be a public JWK",
                where=f"runtime_data.{key_member}",
            )
        event_log = parse_event_log(b64url_decode(request.event_log, "event_log")) if request.event_log else None
        appraisal = self._appraise(request, now, policy, event_log)
        replayed = False
        try:
            report_data = bytes.fromhex(appraisal.measurements["report_data"])
            check_binding(report_data, nonce, request.runtime_data, request.binding, nonce_text=request.nonce)
            appraisal.passed("binding", RULES[request.binding])
        except AppraisalError as error:
            if not self.config.replay_recorded_evidence:
                appraisal.failed("binding", error)
            else:
                replayed = True
                appraisal.passed("binding", f"NOT ENFORCED, replay of recorded evidence: {error.message}")
        record_reference(appraisal, reference, event_log)
        if not appraisal.accepted:
            raise AttestationRefusedError([*appraisal.errors, *appraisal.policy_errors])
        lifetime = timedelta(seconds=policy.token_lifetime_seconds)
        claims = build_claims(
            appraisal,
            issuer=self.config.issuer,
            audience=self.config.audience,
            workload=Workload(request.workload.namespace, request.workload.name, request.workload.pod),
            baseline_id=reference.baseline_id,
            tee_public_jwk=tee_jwk,
            lifetime=lifetime,
            now=now,
            verifier_build=f"teeplane {__version__}",
            replayed=replayed,
        )
        return Issued(sign(claims, self.keyring()), now + lifetime, appraisal)

    def _appraise(
        self, request: AttestRequest, now: datetime, policy: AppraisalPolicy, event_log: EventLog | None
    ) -> Appraisal:
        evidence = b64url_decode(request.evidence, "evidence")
        if request.tee == "snp":
            return self._appraise_snp(evidence, request, now, policy)
        quote = parse_quote(evidence)
        anchor = anchor_for_chain(quote.pck_chain, self.anchors)
        chain = prepare_chain(quote.pck_chain, anchor)
        collateral, error = self._collateral(chain, anchor, now)
        return appraise_quote(
            quote, collateral, anchor, now, policy.to_policy(), event_log=event_log, collateral_error=error
        )

    def _collateral(
        self, chain: PreparedChain, anchor: TrustAnchor, now: datetime
    ) -> tuple[Collateral | None, CollateralFetchError | None]:
        """The collateral for a quote's PCK chain (fetched only for Intel PCK CAs, never for simulated
        evidence), and the fetch error when it had to be fetched and could not be."""
        if chain.pck is None or chain.leaf is None:
            return None, None
        ca = pck_ca_type(chain.leaf) if not anchor.simulated else None
        try:
            return self.collateral.for_platform(chain.pck.fmspc, ca, now), None
        except CollateralFetchError as error:
            return self.collateral.for_fmspc(chain.pck.fmspc, now), error

    def _appraise_snp(self, report: bytes, request: AttestRequest, now: datetime, policy: AppraisalPolicy) -> Appraisal:
        if request.vcek is None:
            raise EvidenceFormatError(Code.SNP_CERTIFICATE_MALFORMED, "SNP evidence needs its VCEK/VLEK", where="vcek")
        if not self.config.amd_chains:
            raise EvidenceFormatError(Code.SNP_CERTIFICATE_MALFORMED, "this RAS has no AMD chain configured")
        vcek = b64url_decode(request.vcek, "vcek")
        first: Appraisal | None = None
        for chain in self.config.amd_chains:
            appraisal = appraise_snp(report, vcek, chain, now, policy.to_policy())
            if appraisal.verified:
                return appraisal
            first = first or appraisal
        assert first is not None
        return first
