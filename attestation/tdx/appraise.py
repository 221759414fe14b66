"""DCAP appraisal of a TDX quote, in the order of Intel's Quote Verification Library.

1. PCK chain to the pinned root, each certificate valid at the evaluation time;
2. root CA CRL (issued by the root, current; PCK CA and TCB signing cert not revoked) and
   PCK CRL (issued by the PCK CA, current; PCK leaf not revoked);
3. TCB Info and QE Identity signed by the TCB signing certificate over their exact bytes,
   current, of the right id and version;
4. FMSPC and PCE-ID of the PCK certificate equal TCB Info's;
5. TDX module identity (MRSIGNERSEAM, masked SEAMATTRIBUTES) and its TCB level;
6. QE report signature by the PCK key; QE report data = SHA-256(attestation key || QE auth data)
   followed by 32 zero bytes;
7. QE identity (masked MISCSELECT and ATTRIBUTES, MRSIGNER, ISVPRODID) and its TCB level;
8. quote signature by the attestation key;
9. platform TCB level and the folded status (see `tcb`), with advisory IDs.

Every check is recorded; a failed check does not stop independent later ones. The appraisal is
always "as of" a time. Without collateral, the cryptographic checks still run and the collateral
checks fail as missing, so such a quote is never `verified`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.certs import describe, ecdsa_p256_valid, p256_key
from teeplane.attestation.errors import AppraisalError, Code
from teeplane.attestation.eventlog import EventLog, compare_rtmrs, replay_rtmrs
from teeplane.attestation.tdx import tcb
from teeplane.attestation.tdx.collateral import Collateral, IsvTcbLevel, QeIdentity, TcbInfo
from teeplane.attestation.tdx.prepared import (
    PreparedChain,
    PreparedCollateral,
    Step,
    crl_window,
    first_expired,
    pck_crl_issuer_error,
    prepare_chain,
    prepare_collateral,
)
from teeplane.attestation.tdx.quote import Quote
from teeplane.attestation.trust import TrustAnchor
from teeplane.errors import TeeplaneError

_ZERO32 = bytes(32)
_COLLATERAL_CHECKS = (
    "crl.root_ca",
    "crl.pck",
    "collateral.tcb_signing_chain",
    "collateral.tcb_info",
    "collateral.qe_identity",
)


def appraise_quote(
    quote: Quote,
    collateral: Collateral | None,
    anchor: TrustAnchor,
    at: datetime,
    policy: Policy = Policy(),
    event_log: EventLog | None = None,
    collateral_error: TeeplaneError | None = None,
) -> Appraisal:
    """Appraise a parsed TDX quote against collateral under a trust anchor, as of `at`.

    With an event log, its replay must reproduce the quote's RTMR0..3. `collateral_error` says
    why the current collateral could not be had (a failed fetch): it is recorded as the failed
    check `collateral.fetch`, before the collateral checks.
    """
    body = quote.body
    result = Appraisal(
        tee="tdx",
        simulated=anchor.simulated,
        quote_version=quote.header.version,
        debug=body.debug,
        measurements=body.measurements(),
    )
    chain = prepare_chain(quote.pck_chain, anchor)
    _record(result, chain.step, at)
    if collateral_error is not None:
        result.failed("collateral.fetch", collateral_error)
    prepared = prepare_collateral(collateral, anchor) if collateral is not None else None
    if prepared is None:
        missing = AppraisalError(Code.COLLATERAL_MISSING, "no collateral was given", where="collateral")
        for name in _COLLATERAL_CHECKS:
            result.failed(name, missing)
    else:
        _check_crls(result, chain, prepared, at)
        for step in prepared.steps:
            _record(result, step, at)
    tcb_info = prepared.tcb_info if prepared else None
    if chain.pck is not None:
        result.fmspc = chain.pck.fmspc.hex()
    elif chain.pck_error is not None:
        result.failed("pck.extensions", chain.pck_error)
    if tcb_info is not None and chain.pck is not None:
        _check_platform_identity(result, chain, tcb_info)
    module_level = _check_tdx_module(result, quote, tcb_info) if tcb_info is not None else None
    _check_qe_report(result, quote, chain)
    qe_level = _check_qe_identity(result, quote, prepared.qe_identity) if prepared else None
    _check_quote_signature(result, quote)
    if prepared is not None and tcb_info is not None and chain.pck is not None:
        _evaluate_tcb(result, quote, chain, prepared, module_level, qe_level)
    if event_log is not None:
        _check_event_log(result, event_log, quote.body.rtmrs)
    result.apply_policy(policy)
    return result


def _check_event_log(result: Appraisal, log: EventLog, rtmrs: tuple[bytes, ...]) -> None:
    try:
        replayed = replay_rtmrs(log)
    except TeeplaneError as exc:
        result.eventlog = {"replayed": False, "events": len(log.events)}
        result.failed("eventlog.rtmrs", exc)
        return
    comparison = compare_rtmrs(replayed, rtmrs, events=len(log.events))
    result.eventlog = comparison.to_json()
    errors = comparison.errors()
    for error in errors:
        result.failed("eventlog.rtmrs", error)
    if not errors:
        result.passed("eventlog.rtmrs", f"{len(log.events)} events replay RTMR0..3 exactly")


def _record(result: Appraisal, step: Step, at: datetime) -> None:
    error = step.error or first_expired(step.windows, at)
    if error is None:
        result.passed(step.name, step.detail)
    else:
        result.failed(step.name, error)


def _check_crls(result: Appraisal, chain: PreparedChain, prepared: PreparedCollateral, at: datetime) -> None:
    root_step = prepared.root_ca_crl_step
    error = root_step.error or first_expired(root_step.windows, at)
    intermediate = chain.intermediate
    if error is None and intermediate is not None and intermediate.serial_number in prepared.root_ca_revoked:
        error = AppraisalError(
            Code.CERT_REVOKED, f"{describe(intermediate)} is revoked by the root CA CRL", where="PCK chain[1]"
        )
    _outcome(result, "crl.root_ca", error, root_step.detail)

    error = pck_crl_issuer_error(prepared, chain)
    if error is None and prepared.pck_crl is not None:
        error = crl_window(prepared.pck_crl, "PCK CRL").error_at(at)
    if error is None and chain.leaf is not None and chain.leaf.serial_number in prepared.pck_revoked:
        error = AppraisalError(
            Code.CERT_REVOKED, f"the PCK certificate {describe(chain.leaf)} is revoked", where="PCK chain[0]"
        )
    _outcome(result, "crl.pck", error, f"{len(prepared.pck_revoked)} revoked, PCK leaf not among them")


def _outcome(result: Appraisal, name: str, error: TeeplaneError | None, detail: str) -> None:
    if error is None:
        result.passed(name, detail)
    else:
        result.failed(name, error)


def _check_platform_identity(result: Appraisal, chain: PreparedChain, tcb_info: TcbInfo) -> None:
    assert chain.pck is not None
    error: AppraisalError | None = None
    if chain.pck.fmspc != tcb_info.fmspc:
        error = AppraisalError(
            Code.COLLATERAL_FMSPC_MISMATCH,
            f"PCK FMSPC {chain.pck.fmspc.hex()} != TCB Info FMSPC {tcb_info.fmspc.hex()}",
            where="tcb_info.fmspc",
        )
    elif chain.pck.pce_id != tcb_info.pce_id:
        error = AppraisalError(
            Code.COLLATERAL_PCEID_MISMATCH,
            f"PCK PCE-ID {chain.pck.pce_id.hex()} != TCB Info PCE-ID {tcb_info.pce_id.hex()}",
            where="tcb_info.pceId",
        )
    _outcome(result, "pck.fmspc_pce_id", error, f"FMSPC {tcb_info.fmspc.hex()}, PCE-ID {tcb_info.pce_id.hex()}")


def _check_tdx_module(result: Appraisal, quote: Quote, tcb_info: TcbInfo) -> IsvTcbLevel | None:
    body = quote.body
    module = tcb.tdx_module_identity(tcb_info, body.tee_tcb_svn)
    name = "tdx_module.identity"
    if module is None:
        wanted = f"TDX_{body.tee_tcb_svn[1]:02X}"
        result.failed(
            name,
            AppraisalError(
                Code.TDX_MODULE_TCB_NOT_SUPPORTED,
                f"TCB Info has no TDX module identity {wanted}",
                where="tcb_info.tdxModuleIdentities",
            ),
        )
        return None
    if not hmac.compare_digest(body.mrsignerseam, module.mrsigner):
        result.failed(
            name,
            AppraisalError(
                Code.TDX_MODULE_MISMATCH,
                f"MRSIGNERSEAM {body.mrsignerseam.hex()} != {module.mrsigner.hex()}",
                where="quote.body.mrsignerseam",
            ),
        )
        return None
    if not tcb.masked_equal(body.seam_attributes, module.attributes, module.attributes_mask):
        result.failed(
            name,
            AppraisalError(
                Code.TDX_MODULE_MISMATCH,
                f"SEAMATTRIBUTES {body.seam_attributes.hex()} & {module.attributes_mask.hex()} "
                f"!= {module.attributes.hex()}",
                where="quote.body.seam_attributes",
            ),
        )
        return None
    if not module.tcb_levels:
        result.passed(name, "MRSIGNERSEAM and SEAMATTRIBUTES match")
        return None
    level = tcb.match_isv_level(module.tcb_levels, body.tee_tcb_svn[0])
    if level is None:
        result.failed(
            name,
            AppraisalError(
                Code.TDX_MODULE_TCB_NOT_SUPPORTED,
                f"no {module.id} TCB level for TDX module SVN {body.tee_tcb_svn[0]}",
                where="quote.body.tee_tcb_svn[0]",
            ),
        )
        return None
    result.passed(name, f"{module.id} SVN {body.tee_tcb_svn[0]}: {level.status}")
    return level


def _check_qe_report(result: Appraisal, quote: Quote, chain: PreparedChain) -> None:
    if chain.leaf_key is None:
        result.failed(
            "qe.report_signature",
            AppraisalError(Code.CERT_CHAIN_INVALID, "no PCK key to check the QE report with"),
        )
    elif ecdsa_p256_valid(chain.leaf_key, quote.qe_report_signature, quote.qe_report.raw):
        result.passed("qe.report_signature", "signed by the PCK key")
    else:
        result.failed(
            "qe.report_signature",
            AppraisalError(
                Code.QE_REPORT_SIGNATURE_INVALID,
                "the QE report signature does not verify under the PCK certificate's key",
                where="quote.signature_data.qe_report_signature",
            ),
        )
    binding = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + _ZERO32
    if hmac.compare_digest(binding, quote.qe_report.report_data):
        result.passed("qe.report_data", "SHA-256(attestation key || QE auth data)")
    else:
        result.failed(
            "qe.report_data",
            AppraisalError(
                Code.QE_REPORT_DATA_MISMATCH,
                f"QE report data {quote.qe_report.report_data.hex()} != {binding.hex()}",
                where="quote.signature_data.qe_report.report_data",
            ),
        )


def _check_qe_identity(result: Appraisal, quote: Quote, identity: QeIdentity | None) -> IsvTcbLevel | None:
    if identity is None:
        return None
    qe = quote.qe_report
    name = "qe.identity"
    mismatch = None
    misc_mask = int.from_bytes(identity.miscselect_mask, "big")
    if qe.miscselect & misc_mask != int.from_bytes(identity.miscselect, "big"):
        mismatch = f"MISCSELECT {qe.miscselect:08x} & {identity.miscselect_mask.hex()} != {identity.miscselect.hex()}"
    elif not tcb.masked_equal(qe.attributes, identity.attributes, identity.attributes_mask):
        mismatch = f"ATTRIBUTES {qe.attributes.hex()} & {identity.attributes_mask.hex()} != {identity.attributes.hex()}"
    elif not hmac.compare_digest(qe.mrsigner, identity.mrsigner):
        mismatch = f"MRSIGNER {qe.mrsigner.hex()} != {identity.mrsigner.hex()}"
    elif qe.isvprodid != identity.isvprodid:
        mismatch = f"ISVPRODID {qe.isvprodid} != {identity.isvprodid}"
    if mismatch is not None:
        result.failed(name, AppraisalError(Code.QE_IDENTITY_MISMATCH, mismatch, where="quote.qe_report"))
        return None
    level = tcb.match_isv_level(identity.tcb_levels, qe.isvsvn)
    if level is None:
        result.failed(
            name,
            AppraisalError(
                Code.QE_TCB_NOT_SUPPORTED,
                f"no QE identity TCB level for ISVSVN {qe.isvsvn}",
                where="qe.isvsvn",
            ),
        )
        return None
    result.passed(name, f"TD_QE ISVSVN {qe.isvsvn}: {level.status}")
    return level


def _check_quote_signature(result: Appraisal, quote: Quote) -> None:
    try:
        key = p256_key(quote.attestation_key)
    except ValueError:
        result.failed(
            "quote.signature",
            AppraisalError(
                Code.QUOTE_ATTESTATION_KEY_INVALID,
                "the attestation key is not a point on P-256",
                where="quote.signature_data.attestation_key",
            ),
        )
        return
    if ecdsa_p256_valid(key, quote.signature, quote.signed):
        result.passed("quote.signature", "header and TD report signed by the attestation key")
    else:
        result.failed(
            "quote.signature",
            AppraisalError(
                Code.QUOTE_SIGNATURE_INVALID,
                "the quote signature does not verify under the attestation key",
                where="quote.signature_data.signature",
            ),
        )


def _evaluate_tcb(
    result: Appraisal,
    quote: Quote,
    chain: PreparedChain,
    prepared: PreparedCollateral,
    module_level: IsvTcbLevel | None,
    qe_level: IsvTcbLevel | None,
) -> None:
    pck = chain.pck
    assert pck is not None
    level = prepared.platform_level(pck, quote.body.tee_tcb_svn)
    if level is None:
        result.tcb_status = tcb.TCB_NOT_SUPPORTED
        result.failed(
            "tcb.status",
            AppraisalError(
                Code.TCB_NOT_SUPPORTED,
                "no TCB Info level is met by the platform (PCK SVNs, PCESVN, TEE_TCB_SVN)",
                where="tcb_info.tcbLevels",
            ),
        )
        return
    status = level.status
    advisories = list(level.advisory_ids)
    for other in (module_level, qe_level):
        if other is not None:
            status = tcb.fold_status(status, other.status)
            advisories.extend(a for a in other.advisory_ids if a not in advisories)
    result.tcb_status = status
    result.advisory_ids = advisories
    detail = f"level {level.tcb_date} {level.status}, folded {status}"
    if status == tcb.REVOKED:
        result.failed("tcb.status", AppraisalError(Code.TCB_REVOKED, "the platform TCB is revoked", where="tcb"))
    else:
        result.passed("tcb.status", detail)
