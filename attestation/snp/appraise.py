"""Appraise an SEV-SNP attestation report with its VCEK/VLEK and the AMD ASK/ASVK -> ARK chain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import AppraisalError, Code
from teeplane.attestation.snp.certs import (
    EndorsementKey,
    check_ark_pinned,
    check_validity,
    load_certificate,
    load_chain,
    parse_endorsement_key,
    resolve_chain,
    verify_chain,
)
from teeplane.attestation.snp.report import ECDSA_P384_SHA384, SnpReport, TcbVersion, parse_report

CHECK_SIGNING_KEY = "snp.signing_key"
CHECK_REPORT_SIGNATURE = "snp.report_signature"
CHECK_CHAIN = "snp.vcek_chain"
CHECK_ARK_PINNED = "snp.ark_pinned"
CHECK_VALIDITY = "snp.cert_validity"
CHECK_CHIP_ID = "snp.chip_id"
CHECK_REPORTED_TCB = "snp.reported_tcb"

_CHIP_ID_SIZE = 64

#: What `appraise_snp` accepts unless told otherwise: no debug, no simulation.
DEFAULT_POLICY = Policy()


def appraise_snp(
    report: bytes, cert: bytes, chain_pem: bytes, at: datetime, policy: Policy = DEFAULT_POLICY
) -> Appraisal:
    """Verify an SEV-SNP report against its VCEK/VLEK (PEM or DER) and AMD chain at time `at`.

    Checks: the report's SIGNING_KEY matches the certificate kind; the ECDSA P-384 signature
    over report[0:0x2A0]; VCEK/VLEK <- ASK/ASVK <- ARK (self-signed); the ARK is AMD's
    published root for the product; certificate validity at `at` (naive means UTC); CHIP_ID
    equals the VCEK hwID (not for a VLEK); REPORTED_TCB equals the SPL extensions.

    Raises EvidenceFormatError if the report, certificate or chain cannot be read. Failed checks
    are recorded in the returned Appraisal, and `policy` is applied (SNP has no TCB status).
    """
    parsed = parse_report(report)
    key = parse_endorsement_key(load_certificate(cert))
    bundle = load_chain(chain_pem)
    at_aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    appraisal = Appraisal(
        tee="snp",
        quote_version=parsed.version,
        debug=parsed.debug,
        measurements={
            "measurement": parsed.measurement.hex(),
            "host_data": parsed.host_data.hex(),
            "report_data": parsed.report_data.hex(),
        },
    )
    _record(appraisal, CHECK_SIGNING_KEY, partial(_check_signing_key, parsed, key))
    _record(appraisal, CHECK_REPORT_SIGNATURE, partial(_check_report_signature, parsed, key))
    path = _record_chain(appraisal, key, bundle)
    _record(appraisal, CHECK_VALIDITY, partial(check_validity, path, at_aware))
    if key.hw_id is not None:
        _record(appraisal, CHECK_CHIP_ID, partial(_check_chip_id, parsed, key.hw_id))
    _record(appraisal, CHECK_REPORTED_TCB, partial(_check_reported_tcb, parsed, key))
    appraisal.apply_policy(policy)
    return appraisal


def _record(appraisal: Appraisal, name: str, check: Callable[[], str]) -> None:
    """Run `check`: its return value is the detail of a pass, an AppraisalError a failure."""
    try:
        detail = check()
    except AppraisalError as error:
        appraisal.failed(name, error)
    else:
        appraisal.passed(name, detail)


def _record_chain(
    appraisal: Appraisal, key: EndorsementKey, bundle: list[x509.Certificate]
) -> list[tuple[str, x509.Certificate]]:
    """Record the chain and ARK checks; return the (role, certificate) path found."""
    path = [(key.kind.name, key.certificate)]
    try:
        chain = resolve_chain(key, bundle)
    except AppraisalError as error:
        appraisal.failed(CHECK_CHAIN, error)
        return path
    _record(appraisal, CHECK_CHAIN, partial(verify_chain, key, chain))
    _record(appraisal, CHECK_ARK_PINNED, partial(check_ark_pinned, chain.root, key.product))
    return [*path, (key.issuer_role, chain.intermediate), ("ARK", chain.root)]


def _check_signing_key(report: SnpReport, key: EndorsementKey) -> str:
    if report.signing_key is not key.kind:
        raise AppraisalError(
            Code.SNP_SIGNATURE_INVALID,
            f"the report names {report.signing_key.name} as its signing key, the certificate is a {key.kind.name}",
            where="report+0x48",
        )
    issued_to = f", issued to {key.csp_id}" if key.csp_id is not None else ""
    return f"report SIGNING_KEY is {key.kind.name}, as is the certificate ({key.product_name}{issued_to})"


def _check_report_signature(report: SnpReport, key: EndorsementKey) -> str:
    if report.signature_algo != ECDSA_P384_SHA384:
        raise AppraisalError(
            Code.SNP_SIGNATURE_INVALID,
            f"SIGNATURE_ALGO {report.signature_algo} is not ECDSA P-384 with SHA-384 (1)",
            where="report+0x34",
        )
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        key.public_key.verify(signature, report.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature as exc:
        raise AppraisalError(
            Code.SNP_SIGNATURE_INVALID,
            f"the ECDSA P-384/SHA-384 signature over report[0:0x2A0] does not verify with the {key.kind.name} key",
            where="report+0x2a0",
        ) from exc
    return f"ECDSA P-384/SHA-384 signature over report[0:0x2A0] verified with the {key.kind.name} key"


def _check_chip_id(report: SnpReport, hw_id: bytes) -> str:
    if report.mask_chip_id:
        return "CHIP_ID masked by the host (MASK_CHIP_ID=1), not compared; the VCEK is chip-unique"
    if report.chip_id != hw_id.ljust(_CHIP_ID_SIZE, b"\0"):
        raise AppraisalError(
            Code.SNP_CHIP_ID_MISMATCH,
            f"CHIP_ID {report.chip_id.hex()} is not the VCEK hwID {hw_id.hex()}",
            where="report+0x1a0",
        )
    return f"CHIP_ID equals the VCEK hwID extension ({hw_id.hex()})"


def _check_reported_tcb(report: SnpReport, key: EndorsementKey) -> str:
    reported = TcbVersion.decode(report.reported_tcb, key.product)
    if reported != key.tcb:
        raise AppraisalError(
            Code.SNP_TCB_MISMATCH,
            f"REPORTED_TCB ({reported}, {key.product} layout) is not the {key.kind.name} SPL extensions ({key.tcb})",
            where="report+0x180",
        )
    return f"REPORTED_TCB ({reported}, {key.product} layout) equals the {key.kind.name} SPL extensions"
