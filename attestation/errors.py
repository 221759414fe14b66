"""Error codes of evidence parsing and appraisal.

Every code is stable: tests, CLI JSON and problem+json bodies rely on it. Parse errors
(`EvidenceFormatError`) mean the input could not be read; appraisal errors (`AppraisalError`)
mean it was read and refused.
"""

from __future__ import annotations

from enum import StrEnum

from teeplane.errors import InputError, RefusedError


class Code(StrEnum):
    """Stable error codes, grouped by what failed."""

    # unreadable input
    INPUT_UNREADABLE = "input.unreadable"
    QUOTE_TRUNCATED = "quote.truncated"
    QUOTE_UNSUPPORTED_VERSION = "quote.unsupported_version"
    QUOTE_UNSUPPORTED_TEE_TYPE = "quote.unsupported_tee_type"
    QUOTE_UNSUPPORTED_BODY_TYPE = "quote.unsupported_body_type"
    QUOTE_UNSUPPORTED_KEY_TYPE = "quote.unsupported_key_type"
    QUOTE_CERTIFICATION_DATA = "quote.certification_data_invalid"
    QUOTE_PCK_CHAIN_MALFORMED = "quote.pck_chain_malformed"
    COLLATERAL_MALFORMED = "collateral.malformed"
    COLLATERAL_MISSING = "collateral.missing"
    COLLATERAL_FETCH_FAILED = "collateral.fetch_failed"
    COLLATERAL_NOT_FOUND = "collateral.not_found"
    SNP_REPORT_MALFORMED = "snp.report_malformed"
    SNP_CERTIFICATE_MALFORMED = "snp.certificate_malformed"
    EVENTLOG_MALFORMED = "eventlog.malformed"

    # certificates and CRLs
    CERT_CHAIN_INVALID = "cert.chain_invalid"
    CERT_UNTRUSTED_ROOT = "cert.untrusted_root"
    CERT_EXPIRED = "cert.expired"
    CERT_REVOKED = "cert.revoked"
    PCK_EXTENSION_MALFORMED = "pck.extension_malformed"
    CRL_SIGNATURE_INVALID = "crl.signature_invalid"
    CRL_ISSUER_MISMATCH = "crl.issuer_mismatch"
    CRL_EXPIRED = "crl.expired"

    # signed collateral
    COLLATERAL_SIGNATURE_INVALID = "collateral.signature_invalid"
    COLLATERAL_EXPIRED = "collateral.expired"
    COLLATERAL_WRONG_ID = "collateral.wrong_id"
    COLLATERAL_WRONG_VERSION = "collateral.wrong_version"
    COLLATERAL_FMSPC_MISMATCH = "collateral.fmspc_mismatch"
    COLLATERAL_PCEID_MISMATCH = "collateral.pceid_mismatch"

    # the quote itself
    QUOTE_SIGNATURE_INVALID = "quote.signature_invalid"
    QUOTE_ATTESTATION_KEY_INVALID = "quote.attestation_key_invalid"
    QE_REPORT_SIGNATURE_INVALID = "qe.report_signature_invalid"
    QE_REPORT_DATA_MISMATCH = "qe.report_data_mismatch"
    QE_IDENTITY_MISMATCH = "qe.identity_mismatch"
    QE_TCB_NOT_SUPPORTED = "qe.tcb_not_supported"
    TDX_MODULE_MISMATCH = "tdx_module.identity_mismatch"
    TDX_MODULE_TCB_NOT_SUPPORTED = "tdx_module.tcb_not_supported"
    TCB_NOT_SUPPORTED = "tcb.not_supported"
    TCB_REVOKED = "tcb.revoked"

    # SEV-SNP
    SNP_UNSUPPORTED_VERSION = "snp.unsupported_version"
    SNP_SIGNATURE_INVALID = "snp.signature_invalid"
    SNP_CHAIN_INVALID = "snp.chain_invalid"
    SNP_CERT_EXPIRED = "snp.certificate_expired"
    SNP_CHIP_ID_MISMATCH = "snp.chip_id_mismatch"
    SNP_TCB_MISMATCH = "snp.tcb_mismatch"

    # event log
    EVENTLOG_RTMR_MISMATCH = "eventlog.rtmr_mismatch"

    # binding of nonce and runtime data, challenges
    RUNTIME_DATA_MALFORMED = "runtime_data.malformed"
    BINDING_MISMATCH = "binding.report_data_mismatch"
    NONCE_INVALID = "nonce.invalid"
    NONCE_EXPIRED = "nonce.expired"
    NONCE_REUSED = "nonce.reused"

    # reference values and workloads
    POLICY_MEASUREMENT_MISMATCH = "policy.measurement_mismatch"
    POLICY_UNKNOWN_WORKLOAD = "policy.unknown_workload"
    POLICY_TEE_MISMATCH = "policy.tee_mismatch"
    POLICY_EVENTLOG_MISSING = "policy.eventlog_missing"

    # appraisal policy
    POLICY_TCB_STATUS = "policy.tcb_status_rejected"
    POLICY_DEBUG = "policy.debug_rejected"
    POLICY_SIMULATED = "policy.simulated_rejected"

    # evidence providers
    PROVIDER_UNAVAILABLE = "provider.unavailable"
    PROVIDER_UNSUPPORTED = "provider.unsupported"
    PROVIDER_GENERATION_CONFLICT = "provider.generation_conflict"

    # tokens
    TOKEN_MISSING = "token.missing"
    TOKEN_MALFORMED = "token.malformed"
    TOKEN_ALG_REJECTED = "token.alg_rejected"
    TOKEN_UNKNOWN_KID = "token.unknown_kid"
    TOKEN_SIGNATURE_INVALID = "token.signature_invalid"
    TOKEN_EXPIRED = "token.expired"
    TOKEN_NOT_YET_VALID = "token.not_yet_valid"
    TOKEN_AUDIENCE_MISMATCH = "token.audience_mismatch"
    TOKEN_ISSUER_MISMATCH = "token.issuer_mismatch"
    TOKEN_CNF_INVALID = "token.cnf_invalid"
    TOKEN_CLAIMS_INVALID = "token.claims_invalid"
    TOKEN_JWKS_INVALID = "token.jwks_invalid"
    KEYRING_MALFORMED = "keyring.malformed"


class EvidenceFormatError(InputError):
    """Evidence, collateral or certificates that cannot be parsed."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


class AppraisalError(RefusedError):
    """A verification or policy check that failed."""

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)
