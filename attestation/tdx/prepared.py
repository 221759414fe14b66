"""The parts of a DCAP appraisal that depend only on a PCK chain or on collateral, not on the quote
or the evaluation time: certificate links, signatures over collateral, parsed CRLs and models.

They are prepared once per distinct input and trust anchor (memoised), so a warm verifier spends
its time on what differs per quote. Validity windows are kept, not judged: the appraisal compares
them with its evaluation time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from teeplane.attestation.certs import (
    check_chain_links,
    crl_issuer_error,
    describe,
    load_certificates,
    load_crl,
    signed_by_cert,
)
from teeplane.attestation.certs import (
    clear_caches as clear_certificate_caches,
)
from teeplane.attestation.errors import AppraisalError, Code
from teeplane.attestation.tdx.collateral import Collateral, QeIdentity, SignedDocument, TcbInfo, TcbLevel
from teeplane.attestation.tdx.pck import PckExtensions, parse_pck_extensions
from teeplane.attestation.tdx.tcb import match_platform_level
from teeplane.attestation.trust import TrustAnchor
from teeplane.errors import TeeplaneError

TCB_INFO_ID = "TDX"
TCB_INFO_VERSION = 3
QE_IDENTITY_ID = "TD_QE"
QE_IDENTITY_VERSION = 2
_Doc = TypeVar("_Doc", TcbInfo, QeIdentity)


@dataclass(frozen=True, slots=True)
class Window:
    """A validity period that must contain the evaluation time, with the error if it does not."""

    what: str
    not_before: datetime
    not_after: datetime | None
    code: Code

    def error_at(self, at: datetime) -> AppraisalError | None:
        """The expiry error at `at`, or None when `at` is inside the window."""
        if self.not_before <= at and (self.not_after is not None and at <= self.not_after):
            return None
        until = f"{self.not_after:%Y-%m-%dT%H:%M:%SZ}" if self.not_after else "(no end)"
        return AppraisalError(
            self.code,
            f"{self.what} is valid {self.not_before:%Y-%m-%dT%H:%M:%SZ} to {until}, not at {at:%Y-%m-%dT%H:%M:%SZ}",
            where=self.what,
        )


def first_expired(windows: tuple[Window, ...], at: datetime) -> AppraisalError | None:
    """The first window that does not contain `at`, as an error."""
    for window in windows:
        error = window.error_at(at)
        if error is not None:
            return error
    return None


@dataclass(frozen=True, slots=True)
class Step:
    """The time-independent outcome of one check: an error, or a detail and validity windows."""

    name: str
    error: TeeplaneError | None = None
    detail: str = ""
    windows: tuple[Window, ...] = ()


def cert_windows(certs: tuple[x509.Certificate, ...], what: str) -> tuple[Window, ...]:
    """The validity windows of certificates, named by position in their chain."""
    return tuple(
        Window(f"{what}[{i}] {describe(c)}", c.not_valid_before_utc, c.not_valid_after_utc, Code.CERT_EXPIRED)
        for i, c in enumerate(certs)
    )


@dataclass(frozen=True, slots=True, eq=False)
class PreparedChain:
    """A quote's PCK chain, checked against the trust anchor."""

    step: Step
    leaf: x509.Certificate | None = None
    intermediate: x509.Certificate | None = None
    leaf_key: ec.EllipticCurvePublicKey | None = None
    pck: PckExtensions | None = None
    pck_error: TeeplaneError | None = None


@lru_cache(maxsize=512)
def prepare_chain(chain: bytes, anchor: TrustAnchor) -> PreparedChain:
    """Parse the PCK chain, check its links to the anchor, and read the SGX extensions."""
    try:
        certs = load_certificates(chain, "PCK chain")
        if len(certs) < 2:
            raise AppraisalError(
                Code.CERT_CHAIN_INVALID, "PCK chain needs a PCK leaf and an issuing CA", where="PCK chain"
            )
        check_chain_links(certs, anchor.root, "PCK chain")
    except TeeplaneError as exc:
        return PreparedChain(Step("pck.chain", exc))
    full = certs if certs[-1] == anchor.root else (*certs, anchor.root)
    step = Step(
        "pck.chain",
        detail=f"{len(full)} certificates up to {describe(anchor.root)}",
        windows=cert_windows(full, "PCK chain"),
    )
    leaf, intermediate = certs[0], certs[1]
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        error = AppraisalError(Code.CERT_CHAIN_INVALID, "the PCK key is not ECDSA", where="PCK chain[0]")
        return PreparedChain(Step("pck.chain", error))
    try:
        pck: PckExtensions | None = parse_pck_extensions(leaf)
        pck_error = None
    except TeeplaneError as exc:
        pck, pck_error = None, exc
    return PreparedChain(step, leaf, intermediate, key, pck, pck_error)


@dataclass(frozen=True, slots=True, eq=False)
class PreparedCollateral:
    """Collateral checked against the trust anchor: signing chain, signatures, ids, CRLs.

    Prepared objects compare by identity: they come from memoised constructors, so identity is
    the cheap cache key for what is derived from a (chain, collateral) pair.
    """

    tcb_info: TcbInfo | None
    qe_identity: QeIdentity | None
    steps: tuple[Step, ...]
    root_ca_crl_step: Step
    root_ca_revoked: frozenset[int]
    pck_crl: x509.CertificateRevocationList | None
    pck_crl_error: TeeplaneError | None
    pck_revoked: frozenset[int]
    _levels: dict[tuple[tuple[int, ...], int, bytes], TcbLevel | None] = field(default_factory=dict)

    def platform_level(self, pck: PckExtensions, tee_tcb_svn: bytes) -> TcbLevel | None:
        """The TCB Info level this platform meets (memoised per SVN combination)."""
        key = (pck.sgx_tcb_components, pck.pcesvn, tee_tcb_svn)
        if key not in self._levels:
            assert self.tcb_info is not None
            self._levels[key] = match_platform_level(self.tcb_info, pck.sgx_tcb_components, pck.pcesvn, tee_tcb_svn)
        return self._levels[key]


@lru_cache(maxsize=64)
def prepare_collateral(collateral: Collateral, anchor: TrustAnchor) -> PreparedCollateral:
    """Check everything about the collateral that does not involve a particular quote."""
    root_crl, root_crl_step = _prepare_root_crl(collateral, anchor)
    revoked = revoked_serials(root_crl)
    tcb_chain_step, signer = _signing_chain_step(
        "collateral.tcb_signing_chain", collateral.tcb_info_chain, anchor, revoked
    )
    steps = [tcb_chain_step]
    tcb_info_step, tcb_info = _signed_model_step(
        "collateral.tcb_info", collateral.tcb_info, signer, tcb_chain_step,
        lambda: collateral.tcb_info_model, TCB_INFO_ID, TCB_INFO_VERSION,
    )  # fmt: skip
    steps.append(tcb_info_step)
    if collateral.qe_identity_chain.strip() != collateral.tcb_info_chain.strip():
        qe_chain_step, qe_signer = _signing_chain_step(
            "collateral.qe_identity_signing_chain", collateral.qe_identity_chain, anchor, revoked
        )
        steps.append(qe_chain_step)
    else:
        qe_chain_step, qe_signer = tcb_chain_step, signer
    qe_step, qe_identity = _signed_model_step(
        "collateral.qe_identity", collateral.qe_identity, qe_signer, qe_chain_step,
        lambda: collateral.qe_identity_model, QE_IDENTITY_ID, QE_IDENTITY_VERSION,
    )  # fmt: skip
    steps.append(qe_step)
    pck_crl: x509.CertificateRevocationList | None = None
    pck_crl_error: TeeplaneError | None = None
    if collateral.pck_crl is None:
        pck_crl_error = AppraisalError(Code.COLLATERAL_MISSING, "no PCK CRL was given", where="pck_crl")
    else:
        try:
            pck_crl = load_crl(collateral.pck_crl, "PCK CRL")
        except TeeplaneError as exc:
            pck_crl_error = exc
    return PreparedCollateral(
        tcb_info=tcb_info,
        qe_identity=qe_identity,
        steps=tuple(steps),
        root_ca_crl_step=root_crl_step,
        root_ca_revoked=revoked,
        pck_crl=pck_crl,
        pck_crl_error=pck_crl_error,
        pck_revoked=revoked_serials(pck_crl),
    )


def crl_window(crl: x509.CertificateRevocationList, what: str) -> Window:
    """The period a CRL is current (thisUpdate to nextUpdate)."""
    return Window(what, crl.last_update_utc, crl.next_update_utc, Code.CRL_EXPIRED)


def revoked_serials(crl: x509.CertificateRevocationList | None) -> frozenset[int]:
    """The serial numbers a CRL revokes (none for an absent CRL)."""
    return frozenset(r.serial_number for r in crl) if crl is not None else frozenset()


def _prepare_root_crl(
    collateral: Collateral, anchor: TrustAnchor
) -> tuple[x509.CertificateRevocationList | None, Step]:
    name = "crl.root_ca"
    if collateral.root_ca_crl is None:
        return None, Step(name, AppraisalError(Code.COLLATERAL_MISSING, "no root CA CRL was given"))
    try:
        crl = load_crl(collateral.root_ca_crl, "root CA CRL")
    except TeeplaneError as exc:
        return None, Step(name, exc)
    error = crl_issuer_error(crl, anchor.root, "root CA CRL")
    if error is not None:
        return None, Step(name, error)
    detail = f"signed by {describe(anchor.root)}, {len(revoked_serials(crl))} revoked"
    return crl, Step(name, detail=detail, windows=(crl_window(crl, "root CA CRL"),))


def _signing_chain_step(
    name: str, chain_pem: bytes, anchor: TrustAnchor, revoked: frozenset[int]
) -> tuple[Step, x509.Certificate | None]:
    try:
        certs = load_certificates(chain_pem, name, Code.COLLATERAL_MALFORMED)
        check_chain_links(certs, anchor.root, name)
    except TeeplaneError as exc:
        return Step(name, exc), None
    signer = certs[0]
    if signer.serial_number in revoked and signer != anchor.root:
        error = AppraisalError(Code.CERT_REVOKED, f"{describe(signer)} is revoked by the root CA CRL", where=name)
        return Step(name, error), None
    full = certs if certs[-1] == anchor.root else (*certs, anchor.root)
    return Step(name, detail=f"signer {describe(signer)}", windows=cert_windows(full, name)), signer


def _signed_model_step(
    name: str,
    doc: SignedDocument,
    signer: x509.Certificate | None,
    chain_step: Step,
    load: Callable[[], _Doc],
    expected_id: str,
    expected_version: int,
) -> tuple[Step, _Doc | None]:
    """Check a signed collateral document: parse, signature, id and version, validity window."""
    try:
        model = load()
    except TeeplaneError as exc:
        return Step(name, exc), None
    if signer is None:
        error = AppraisalError(
            Code.COLLATERAL_SIGNATURE_INVALID, f"{doc.name}: its signing chain did not verify", where=name
        )
        return Step(name, error), model
    if not signed_by_cert(signer, doc.signature, doc.raw):
        error = AppraisalError(
            Code.COLLATERAL_SIGNATURE_INVALID,
            f"{doc.name} signature does not verify under {describe(signer)}",
            where=doc.name,
        )
        return Step(name, error), model
    if model.id != expected_id:
        error = AppraisalError(
            Code.COLLATERAL_WRONG_ID, f"{doc.name} id is '{model.id}', expected '{expected_id}'",
            where=f"{doc.name}.id",
        )  # fmt: skip
        return Step(name, error), model
    if model.version != expected_version:
        error = AppraisalError(
            Code.COLLATERAL_WRONG_VERSION,
            f"{doc.name} version is {model.version}, expected {expected_version}",
            where=f"{doc.name}.version",
        )
        return Step(name, error), model
    window = Window(doc.name, model.issue_date, model.next_update, Code.COLLATERAL_EXPIRED)
    detail = f"signed, id {model.id} v{model.version}, evaluation data {model.tcb_evaluation_data_number}"
    return Step(name, detail=detail, windows=(window, *chain_step.windows)), model


@lru_cache(maxsize=512)
def pck_crl_issuer_error(prepared: PreparedCollateral, chain: PreparedChain) -> TeeplaneError | None:
    """Why the PCK CRL was not issued and signed by this chain's PCK CA (memoised per pair)."""
    if prepared.pck_crl_error is not None:
        return prepared.pck_crl_error
    if prepared.pck_crl is None or chain.intermediate is None:
        return AppraisalError(Code.CERT_CHAIN_INVALID, "no verified PCK CA to check the PCK CRL against")
    return crl_issuer_error(prepared.pck_crl, chain.intermediate, "PCK CRL")


def clear_caches() -> None:
    """Forget every memoised certificate, chain, CRL and collateral result (a cold verifier)."""
    clear_certificate_caches()
    for cached in (prepare_chain, prepare_collateral, pck_crl_issuer_error):
        cached.cache_clear()
