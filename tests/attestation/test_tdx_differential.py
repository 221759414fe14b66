"""Differential test: TEEPlane's TDX appraisal against dcap-qvl, an independent DCAP verifier.

dcap-qvl (Phala Network, Rust, PyPI `dcap-qvl`, pinned in the dev extras) and TEEPlane see the same
quote, the same collateral bytes and the same evaluation time. Comparison rule:

* TEEPlane `verified` (every cryptographic and collateral check passed, whatever the TCB status)
  <=> `dcap_qvl.verify` returns a report;
* when both verify: the same TCB status (dcap-qvl spells statuses as Intel does; `_intel_status`
  fails loudly if that ever changes) and the same advisory IDs as a set;
* when both refuse at the reference time: TCB_NOT_SUPPORTED on one side <=> on the other (dcap-qvl
  reports it as a refusal, not a status: see `_REFUSAL_STATUS`).

TEEPlane follows Intel's Quote Verification Library (QVL). Where dcap-qvl 0.7 differs from QVL, the
difference is an explicit entry (`DIVERGENCES`, `NON_COMPARABLE`, `EXACT_NEXT_UPDATE_DIVERGENCES`,
`CERT_DATA_TYPE_DIVERGENCE`) with its reason, and the test asserts the difference still holds, so a
change on either side is noticed. Nothing is skipped silently.

Collateral is read from the corpus in place; the dcap-qvl side reads it with its own bundle parser
(`QuoteCollateralV3.from_json`) or with the small PCS-response reader below, never through
TEEPlane's loaders.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import dcap_qvl
import pytest
from cryptography import x509

from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, load_bundle, load_pcs_files
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import intel_root
from teeplane.errors import TeeplaneError

pytestmark = pytest.mark.corpus

TCB_NOT_SUPPORTED = "TCB_NOT_SUPPORTED"
INTEL_TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
#: dcap-qvl refusals that stand for a TCB status. Divergence in form, not in verdict: dcap-qvl 0.7
#: raises "No matching TCB level found" where QVL (and TEEPlane) report the status TCB_NOT_SUPPORTED,
#: which is not a verified result on either side (QVL: STATUS_TCB_NOT_SUPPORTED is an error status).
_REFUSAL_STATUS = {"No matching TCB level found": TCB_NOT_SUPPORTED}

_ONE_SECOND = timedelta(seconds=1)


# ---------------------------------------------------------------------------------------------
# Collateral sets


@dataclass(frozen=True)
class CollateralSet:
    """Collateral from the corpus and the time it is evaluated at.

    Either a bundle (`*_collateral.json`, optionally with its TCB Info replaced by a PCS response),
    or separate PCS files. `note` says where a set is assembled from more than one source.
    """

    at: str
    bundle: str | None = None
    tcb_info: str | None = None
    qe_identity: str | None = None
    signing_chain: str | None = None
    pck_crl: str | None = None
    root_ca_crl: str | None = None
    note: str = ""


SOLANA = "automata/solana_"
SETS: dict[str, CollateralSet] = {
    # EXPECTED.md rows
    "dcap-qvl": CollateralSet("2025-06-25T00:00:00Z", bundle="dcap-qvl/tdx_quote_collateral.json"),
    "dcap-qvl-outdated": CollateralSet("2026-02-25T00:00:00Z", bundle="dcap-qvl/tdx_quote_outdated_collateral.json"),
    "automata-solana": CollateralSet(
        "2025-07-10T00:00:00Z",
        tcb_info=SOLANA + "tcb_info_v3_with_tdx_module.json",
        qe_identity=SOLANA + "qe_identity.json",
        signing_chain=SOLANA + "signing.pem",
        pck_crl=SOLANA + "pck_platform_crl.der",
        root_ca_crl=SOLANA + "intel_root_ca_crl.der",
    ),
    "go-tdx-guest": CollateralSet(
        "2023-06-20T00:00:00Z",
        tcb_info="go-tdx-guest/sample_tcbInfo_response",
        qe_identity="go-tdx-guest/sample_qeIdentity_response",
        signing_chain="go-tdx-guest/tcbInfoIssuerChain.pem",
        pck_crl="go-tdx-guest/pckcrl",
        root_ca_crl="go-tdx-guest/rootcrl.der",
    ),
    "go-tdx-guest-v5": CollateralSet(
        "2026-02-10T00:00:00Z",
        tcb_info="go-tdx-guest/sample_tcbinfo_response_v5",
        qe_identity="go-tdx-guest/sample_qeIdentity_response",
        signing_chain="dcap-qvl/tcb_info_issuer_chain_2025.pem",
    ),
    "trustee": CollateralSet(
        "2025-10-29T00:00:00Z",
        tcb_info="trustee/tcbInfo.json",
        qe_identity="trustee/enclaveIdentity.json",
        signing_chain="dcap-qvl/tcb_info_issuer_chain_2025.pem",
    ),
    # More genuine collateral in the corpus (automata's October 2025 PCS responses)
    "automata-1025": CollateralSet(
        "2025-10-20T00:00:00Z",
        tcb_info="automata/1025_tcb_info.json",
        qe_identity="automata/1025_identity.json",
        signing_chain=SOLANA + "signing.pem",
        pck_crl="automata/1025_pck_crl.der",
        root_ca_crl=SOLANA + "intel_root_ca_crl.der",
    ),
    # The two CRL-less EXPECTED.md rows made comparable: same TCB Info, plus genuine Intel CRLs
    # (or QE identity) current at the evaluation time, taken from another corpus folder. Both tools
    # get exactly these bytes.
    "trustee+automata-crls": CollateralSet(
        "2025-10-29T00:00:00Z",
        tcb_info="trustee/tcbInfo.json",
        qe_identity="trustee/enclaveIdentity.json",
        signing_chain="dcap-qvl/tcb_info_issuer_chain_2025.pem",
        pck_crl="automata/1025_pck_crl.der",
        root_ca_crl=SOLANA + "intel_root_ca_crl.der",
        note="trustee's TCB Info and QE identity with automata's Platform CA CRL (2025-10-13) and root CRL",
    ),
    "dcap-qvl-outdated+v5-tcb-info": CollateralSet(
        "2026-02-25T00:00:00Z",
        bundle="dcap-qvl/tdx_quote_outdated_collateral.json",
        tcb_info="go-tdx-guest/sample_tcbinfo_response_v5",
        note="go-tdx-guest's v5 TCB Info in dcap-qvl's 2026-02-18 bundle (current QE identity, CRLs)",
    ),
}

#: Sets dcap-qvl cannot evaluate: documented non-comparisons. The TCB status of these rows is
#: compared through the "+" sets above, which add genuine CRLs / QE identity from the corpus.
NON_COMPARABLE: dict[str, str] = {
    "go-tdx-guest-v5": (
        "go-tdx-guest ships no CRLs for the v5 sample: dcap-qvl needs the root CA and PCK CRLs and "
        "refuses before any other check (TEEPlane fails the CRL checks as collateral.missing; its QE "
        "identity file is from 2023 and expired too). Compared via 'dcap-qvl-outdated+v5-tcb-info'."
    ),
    "trustee": (
        "trustee's test data has no CRLs: dcap-qvl refuses before any other check (TEEPlane fails the "
        "CRL checks as collateral.missing). Compared via 'trustee+automata-crls'."
    ),
}


# ---------------------------------------------------------------------------------------------
# Quote x collateral pairs: every genuine quote with every set of its FMSPC (test_pairs_are_complete
# checks that this table is exactly that). `verified`/`tcb_status` pin TEEPlane's appraisal (they
# restate EXPECTED.md where it has a row), so both tools agreeing on a wrong answer still fails.


@dataclass(frozen=True)
class Pair:
    quote: str
    collateral: str
    verified: bool
    tcb_status: str | None

    @property
    def id(self) -> str:
        return f"{self.quote}@{self.collateral}"


FLASHTESTATIONS = (
    "flashtestations/0x12c14e56d585Dcf3B36f37476c00E78bA9363742_quote.bin",
    "flashtestations/0x12c14e56d585Dcf3B36f37476c00E78bA9363742_quote2.bin",
    "flashtestations/0xc200F222043C5BC6c70aA6e35f5c5fDE079f3A04_quote.bin",
)
V5_SETS = ("dcap-qvl-outdated", "dcap-qvl-outdated+v5-tcb-info", "go-tdx-guest-v5")
PAIRS = [
    Pair("dcap-qvl/tdx_quote", "dcap-qvl", True, "UpToDate"),
    Pair("dcap-qvl/tdx-quote.from_hex.bin", "dcap-qvl", False, TCB_NOT_SUPPORTED),
    Pair("dcap-qvl/quote-from-tappd.from_hex.bin", "dcap-qvl", False, TCB_NOT_SUPPORTED),
    *(Pair(q, "dcap-qvl", True, "UpToDate") for q in FLASHTESTATIONS),
    *(Pair("dcap-qvl/tdx_quote_outdated", s, False, TCB_NOT_SUPPORTED) for s in V5_SETS),
    *(Pair("trustee/tdx_quote_5.dat", s, False, TCB_NOT_SUPPORTED) for s in V5_SETS),
    # automata/quotes_tdx_quote_5.dat is byte-identical to trustee/tdx_quote_5.dat (both MRSERVICETD != 0)
    *(Pair("automata/quotes_tdx_quote_5.dat", s, False, TCB_NOT_SUPPORTED) for s in V5_SETS),
    Pair("go-tdx-guest/quote_v5_sample.dat", "dcap-qvl-outdated", True, "UpToDate"),
    Pair("go-tdx-guest/quote_v5_sample.dat", "dcap-qvl-outdated+v5-tcb-info", True, "UpToDate"),
    Pair("go-tdx-guest/quote_v5_sample.dat", "go-tdx-guest-v5", False, "UpToDate"),
    Pair("automata/solana_quote_tdx.bin", "automata-solana", True, "OutOfDate"),
    Pair("automata/solana_quote_tdx.bin", "automata-1025", True, "OutOfDate"),
    Pair("go-tdx-guest/ccel/cos-113-tdx-quote.dat", "automata-solana", True, "UpToDate"),
    Pair("go-tdx-guest/ccel/cos-113-tdx-quote.dat", "automata-1025", True, "UpToDate"),
    Pair("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", "go-tdx-guest", False, TCB_NOT_SUPPORTED),
    Pair("trustee/tdx_quote_4.dat", "go-tdx-guest", True, "UpToDate"),
    Pair("trustee/tdx_quote_6.dat", "trustee", False, "OutOfDate"),
    Pair("trustee/tdx_quote_6.dat", "trustee+automata-crls", True, "OutOfDate"),
]  # fmt: skip
QUOTES = sorted({p.quote for p in PAIRS})


@dataclass(frozen=True)
class Divergence:
    reason: str
    dcap_qvl_error: str  # a substring of dcap-qvl's refusal


#: Pairs TEEPlane verifies and dcap-qvl 0.7 refuses, by design difference.
DIVERGENCES: dict[str, Divergence] = {
    "trustee/tdx_quote_4.dat@go-tdx-guest": Divergence(
        "dcap-qvl 0.7 `verify` refuses a TD whose TDATTRIBUTES.DEBUG bit is set. Intel's QVL "
        "(QuoteVerifier::verify) has no debug check: debug is the relying party's appraisal policy. "
        "TEEPlane follows QVL: verified (UpToDate) and refused by the default Policy "
        "(policy.debug_rejected), so the default *acceptance* of both tools agrees.",
        "Debug mode is enabled",
    ),
}

#: Sets whose earliest nextUpdate is a CRL's: evaluated at exactly that second, dcap-qvl 0.7 refuses
#: (CrlExpired: it takes now >= nextUpdate as expired) while QVL accepts (pckparser::Validity::isValid,
#: which CrlStore::expired uses, is notBefore <= t <= notAfter, both ends inclusive) and so does TEEPlane.
#: dcap-qvl is inclusive for TCB Info and QE identity nextUpdate, so other sets agree at the boundary.
EXACT_NEXT_UPDATE_DIVERGENCES: dict[str, str] = {  # set -> its PCK CRL's nextUpdate, the earliest
    "dcap-qvl": "2025-07-19T10:00:35Z",
    "dcap-qvl-outdated": "2026-03-20T10:41:15Z",
    "automata-1025": "2025-11-12T10:45:32Z",  # automata/1025_pck_crl.der
    "trustee+automata-crls": "2025-11-12T10:45:32Z",  # the same borrowed CRL
}


# ---------------------------------------------------------------------------------------------
# Reading collateral for dcap-qvl, independently of TEEPlane's loaders


@dataclass(frozen=True)
class Parts:
    """A collateral set in neutral form (signed JSON text, raw r||s, PEM text, DER CRLs)."""

    tcb_info: str
    tcb_info_signature: bytes
    qe_identity: str
    qe_identity_signature: bytes
    tcb_info_chain: str
    qe_identity_chain: str
    pck_crl: bytes | None
    root_ca_crl: bytes | None
    bundle_json: str | None  # set when the source is a bundle: dcap-qvl reads that text itself


_PCS_RESPONSE = re.compile(
    r'\A\s*\{\s*"(?:tcbInfo|enclaveIdentity)"\s*:\s*(?P<body>\{.*\})\s*,'
    r'\s*"signature"\s*:\s*"(?P<sig>[0-9a-fA-F]{128})"\s*\}\s*\Z',
    re.S,
)
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def _pcs_response(text: str) -> tuple[str, bytes]:
    """The exact signed text of `{"tcbInfo"|"enclaveIdentity": {...}, "signature": "hex"}`."""
    match = _PCS_RESPONSE.match(text)
    assert match, "not a PCS response with the document first and its signature second"
    return match["body"], bytes.fromhex(match["sig"])


@cache
def _parts(tdx: Path, name: str) -> Parts:
    spec = SETS[name]
    if spec.bundle is not None:
        bundle = json.loads((tdx / spec.bundle).read_text())
        if spec.tcb_info is not None:
            body, sig = _pcs_response((tdx / spec.tcb_info).read_text())
            bundle |= {"tcb_info": body, "tcb_info_signature": sig.hex()}
        return Parts(
            bundle["tcb_info"],
            bytes.fromhex(bundle["tcb_info_signature"]),
            bundle["qe_identity"],
            bytes.fromhex(bundle["qe_identity_signature"]),
            bundle["tcb_info_issuer_chain"],
            bundle["qe_identity_issuer_chain"],
            bytes.fromhex(bundle["pck_crl"]),
            bytes.fromhex(bundle["root_ca_crl"]),
            json.dumps(bundle),
        )
    assert spec.tcb_info and spec.qe_identity and spec.signing_chain
    tcb_info, tcb_sig = _pcs_response((tdx / spec.tcb_info).read_text())
    qe_identity, qe_sig = _pcs_response((tdx / spec.qe_identity).read_text())
    chain = (tdx / spec.signing_chain).read_text()  # the TCB signing chain signs both documents
    return Parts(
        tcb_info,
        tcb_sig,
        qe_identity,
        qe_sig,
        chain,
        chain,
        (tdx / spec.pck_crl).read_bytes() if spec.pck_crl else None,
        (tdx / spec.root_ca_crl).read_bytes() if spec.root_ca_crl else None,
        None,
    )


def _pck_ca_chain(quote: bytes) -> str:
    """The quote's own PCK CA + root (the PCK CRL's issuer chain), as dcap-qvl parses the quote."""
    pem = dcap_qvl.parse_quote(quote).cert_chain_pem_bytes()
    assert pem is not None
    blocks = _PEM_BLOCK.findall(pem)
    assert len(blocks) >= 2, "a PCK chain has a leaf and at least its CA"
    return b"".join(blocks[1:]).decode()


def dcap_collateral(tdx: Path, name: str, quote: bytes) -> dcap_qvl.QuoteCollateralV3:
    parts = _parts(tdx, name)
    if parts.bundle_json is not None:
        return dcap_qvl.QuoteCollateralV3.from_json(parts.bundle_json)
    return dcap_qvl.QuoteCollateralV3(
        pck_crl_issuer_chain=_pck_ca_chain(quote),
        # no CRL in the corpus: dcap-qvl has no "absent" form; empty bytes make it refuse (NON_COMPARABLE)
        root_ca_crl=parts.root_ca_crl or b"",
        pck_crl=parts.pck_crl or b"",
        tcb_info_issuer_chain=parts.tcb_info_chain,
        tcb_info=parts.tcb_info,
        tcb_info_signature=parts.tcb_info_signature,
        qe_identity_issuer_chain=parts.qe_identity_chain,
        qe_identity=parts.qe_identity,
        qe_identity_signature=parts.qe_identity_signature,
    )


@cache
def teeplane_collateral(tdx: Path, name: str) -> Collateral:
    """TEEPlane's collateral through its own loaders (bundle, or PCS files)."""
    spec = SETS[name]
    parts = _parts(tdx, name)
    if parts.bundle_json is not None:
        return load_bundle(parts.bundle_json.encode())
    assert spec.tcb_info and spec.qe_identity and spec.signing_chain

    def read(path: str | None) -> bytes | None:
        return (tdx / path).read_bytes() if path else None

    return load_pcs_files(
        (tdx / spec.tcb_info).read_bytes(),
        (tdx / spec.qe_identity).read_bytes(),
        (tdx / spec.signing_chain).read_bytes(),
        pck_crl=read(spec.pck_crl),
        root_ca_crl=read(spec.root_ca_crl),
    )


# ---------------------------------------------------------------------------------------------
# Running both


@dataclass(frozen=True)
class Outcome:
    verified: bool
    tcb_status: str | None
    advisory_ids: frozenset[str]
    detail: str  # TEEPlane: error codes; dcap-qvl: the refusal message


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_teeplane(quote: bytes, collateral: Collateral, at: datetime) -> Outcome:
    try:
        result = appraise_quote(parse_quote(quote), collateral, intel_root(), at)
    except TeeplaneError as exc:  # unparseable quote: refused
        return Outcome(False, None, frozenset(), exc.code)
    codes = [e.code for e in result.errors] + [f"policy:{e.code}" for e in result.policy_errors]
    return Outcome(result.verified, result.tcb_status, frozenset(result.advisory_ids), " ".join(codes))


def _intel_status(status: str) -> str:
    assert status in INTEL_TCB_STATUSES, f"dcap-qvl spelled a TCB status {status!r}: map it to Intel's here"
    return status


def run_dcap_qvl(quote: bytes, collateral: dcap_qvl.QuoteCollateralV3, at: datetime) -> Outcome:
    try:
        report = dcap_qvl.verify(quote, collateral, int(at.timestamp()))
    except ValueError as exc:  # dcap-qvl's refusal
        message = str(exc)
        status = next((s for m, s in _REFUSAL_STATUS.items() if m in message), None)
        return Outcome(False, status, frozenset(), message)
    return Outcome(True, _intel_status(report.status), frozenset(report.advisory_ids), "")


def run_both(tdx: Path, pair_quote: str, name: str, at: datetime | None = None) -> tuple[Outcome, Outcome]:
    quote = (tdx / pair_quote).read_bytes()
    when = at or _utc(SETS[name].at)
    ours = run_teeplane(quote, teeplane_collateral(tdx, name), when)
    theirs = run_dcap_qvl(quote, dcap_collateral(tdx, name, quote), when)
    return ours, theirs


def assert_agree(ours: Outcome, theirs: Outcome, what: str) -> None:
    """Same verdict; same TCB status and advisories when verified; TCB_NOT_SUPPORTED on both or none."""
    assert ours.verified is theirs.verified, f"{what}: TEEPlane {ours} vs dcap-qvl {theirs}"
    if ours.verified:
        assert ours.tcb_status == theirs.tcb_status, what
        assert ours.advisory_ids == theirs.advisory_ids, what
    else:
        assert (ours.tcb_status == TCB_NOT_SUPPORTED) is (theirs.tcb_status == TCB_NOT_SUPPORTED), (
            f"{what}: TEEPlane {ours} vs dcap-qvl {theirs}"
        )


# ---------------------------------------------------------------------------------------------
# The corpus pairs


def test_pairs_are_complete(corpus: Path) -> None:
    """PAIRS is exactly every (genuine quote, collateral set of the quote's FMSPC)."""
    tdx = corpus / "tdx"
    fmspc = {n: json.loads(_parts(tdx, n).tcb_info)["fmspc"].upper() for n in SETS}
    wanted = {
        (q, n) for q in QUOTES for n in SETS if dcap_qvl.parse_quote((tdx / q).read_bytes()).fmspc().upper() == fmspc[n]
    }
    assert {(p.quote, p.collateral) for p in PAIRS} == wanted
    assert len(PAIRS) == len(wanted), "a pair is listed twice"
    assert {p.collateral for p in PAIRS} == set(SETS), "every collateral set is used"
    assert set(DIVERGENCES) <= {p.id for p in PAIRS}
    assert set(EXACT_NEXT_UPDATE_DIVERGENCES) <= {p.collateral for p in VERIFIED}
    # TDX 1.5 bodies (v5 quotes, body type 3, with MRSERVICETD and TEE_TCB_SVN2) are compared too
    td15 = {
        p.quote
        for p in PAIRS
        if isinstance(dcap_qvl.parse_quote((tdx / p.quote).read_bytes()).report, dcap_qvl.TdReport15)
    }
    assert "go-tdx-guest/quote_v5_sample.dat" in td15 and len(td15) >= 3, td15
    # the genuine quotes of the corpus (report.dat is a TDREPORT; intel-qvl-sampledata is synthetic)
    tdx_headers = (b"\x04\x00\x02\x00\x81\x00\x00\x00", b"\x05\x00\x02\x00\x81\x00\x00\x00")
    on_disk = {
        str(f.relative_to(tdx))
        for d in ("dcap-qvl", "automata", "go-tdx-guest", "trustee", "flashtestations")
        for f in (tdx / d).rglob("*")
        if f.is_file() and f.read_bytes()[:8] in tdx_headers
    }
    assert on_disk == set(QUOTES), "every genuine TDX quote of the corpus is compared"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p.id)
def test_verdicts_agree(corpus: Path, pair: Pair) -> None:
    ours, theirs = run_both(corpus / "tdx", pair.quote, pair.collateral)
    assert (ours.verified, ours.tcb_status) == (pair.verified, pair.tcb_status), ours

    if pair.collateral in NON_COMPARABLE:
        reason = NON_COMPARABLE[pair.collateral]
        assert not theirs.verified, f"dcap-qvl now runs without CRLs; compare this pair ({reason})"
        assert "CRL" in theirs.detail, (reason, theirs.detail)
        assert not ours.verified
        assert "collateral.missing" in ours.detail.split(), (reason, ours.detail)
        return

    divergence = DIVERGENCES.get(pair.id)
    if divergence is not None:
        assert ours.verified, divergence.reason
        assert not theirs.verified, f"dcap-qvl no longer diverges: {divergence.reason}"
        assert divergence.dcap_qvl_error in theirs.detail, (divergence.reason, theirs.detail)
        return

    assert_agree(ours, theirs, pair.id)


def test_debug_divergence_agrees_at_the_default_policy(corpus: Path) -> None:
    """The debug divergence is one of layering: TEEPlane's default Policy refuses what dcap-qvl refuses."""
    tdx = corpus / "tdx"
    quote = (tdx / "trustee/tdx_quote_4.dat").read_bytes()
    result = appraise_quote(
        parse_quote(quote), teeplane_collateral(tdx, "go-tdx-guest"), intel_root(), _utc(SETS["go-tdx-guest"].at)
    )
    assert result.debug and result.verified and not result.accepted
    assert [e.code for e in result.policy_errors] == ["policy.debug_rejected"]


def test_intel_synthetic_sample_is_refused_by_both(corpus: Path) -> None:
    """Intel's QVL sample is signed under a test root: neither tool accepts it under the Intel root."""
    qvl = corpus / "tdx/intel-qvl-sampledata"
    quote = (qvl / "quote.dat").read_bytes()
    tcb_info, tcb_sig = _pcs_response((qvl / "tcbInfo.json").read_text())
    qe_identity, qe_sig = _pcs_response((qvl / "qeIdentity.json").read_text())
    chain = (qvl / "tcbSignChain.pem").read_text()
    theirs = run_dcap_qvl(
        quote,
        dcap_qvl.QuoteCollateralV3(
            pck_crl_issuer_chain=(qvl / "pckSignChain.pem").read_text(),
            root_ca_crl=(qvl / "rootCaCrl.der").read_bytes(),
            pck_crl=(qvl / "intermediateCaCrl.der").read_bytes(),
            tcb_info_issuer_chain=chain,
            tcb_info=tcb_info,
            tcb_info_signature=tcb_sig,
            qe_identity_issuer_chain=chain,
            qe_identity=qe_identity,
            qe_identity_signature=qe_sig,
        ),
        _utc("2025-06-25T00:00:00Z"),
    )
    collateral = load_pcs_files(
        (qvl / "tcbInfo.json").read_bytes(),
        (qvl / "qeIdentity.json").read_bytes(),
        chain.encode(),
        pck_crl=(qvl / "intermediateCaCrl.der").read_bytes(),
        root_ca_crl=(qvl / "rootCaCrl.der").read_bytes(),
    )
    ours = run_teeplane(quote, collateral, _utc("2025-06-25T00:00:00Z"))
    assert not ours.verified and not theirs.verified, (ours, theirs)
    assert "cert.chain_invalid" in ours.detail.split()
    assert "CRL" in theirs.detail  # the test root's CRL does not verify under the Intel root


# ---------------------------------------------------------------------------------------------
# Evaluation time around the collateral's validity


COMPARABLE = [p for p in PAIRS if p.collateral not in NON_COMPARABLE]
VERIFIED = [p for p in COMPARABLE if p.verified and p.id not in DIVERGENCES]


def _validity(tdx: Path, name: str) -> tuple[list[tuple[datetime, str]], list[tuple[datetime, str]]]:
    """(issueDate/lastUpdate, nextUpdate) of TCB Info, QE identity and both CRLs, each with its item."""
    parts = _parts(tdx, name)
    issued: list[tuple[datetime, str]] = []
    expires: list[tuple[datetime, str]] = []
    for what, text in (("tcb_info", parts.tcb_info), ("qe_identity", parts.qe_identity)):
        doc = json.loads(text)
        issued.append((_utc(doc["issueDate"]), what))
        expires.append((_utc(doc["nextUpdate"]), what))
    for what, der in (("pck_crl", parts.pck_crl), ("root_ca_crl", parts.root_ca_crl)):
        assert der is not None
        crl = x509.load_der_x509_crl(der)
        assert crl.next_update_utc is not None
        issued.append((crl.last_update_utc, what))
        expires.append((crl.next_update_utc, what))
    return issued, expires


@pytest.mark.parametrize("pair", COMPARABLE, ids=lambda p: p.id)
def test_one_second_after_the_earliest_next_update_both_refuse(corpus: Path, pair: Pair) -> None:
    tdx = corpus / "tdx"
    _, expires = _validity(tdx, pair.collateral)
    ours, theirs = run_both(tdx, pair.quote, pair.collateral, min(expires)[0] + _ONE_SECOND)
    assert not ours.verified and not theirs.verified, (ours, theirs)
    assert {"collateral.expired", "crl.expired"} & set(ours.detail.split()), ours
    assert "expired" in theirs.detail.lower(), theirs


@pytest.mark.parametrize("pair", VERIFIED, ids=lambda p: p.id)
def test_validity_window_boundaries(corpus: Path, pair: Pair) -> None:
    """Inside the window both verify; before the latest issue date both refuse; at exactly the
    earliest nextUpdate QVL and TEEPlane still accept, and dcap-qvl does too unless that item is a CRL."""
    tdx = corpus / "tdx"
    issued, expires = _validity(tdx, pair.collateral)
    (first_expiry, expiring), (last_issue, _) = min(expires), max(issued)

    for at in (first_expiry - _ONE_SECOND, last_issue):
        ours, theirs = run_both(tdx, pair.quote, pair.collateral, at)
        assert ours.verified and theirs.verified, (at, ours, theirs)
        assert_agree(ours, theirs, f"{pair.id} at {at}")

    ours, theirs = run_both(tdx, pair.quote, pair.collateral, last_issue - _ONE_SECOND)
    assert not ours.verified and not theirs.verified, (ours, theirs)

    ours, theirs = run_both(tdx, pair.quote, pair.collateral, first_expiry)
    assert ours.verified, f"QVL's validity is inclusive of nextUpdate ({expiring}): {ours}"
    crl_next_update = EXACT_NEXT_UPDATE_DIVERGENCES.get(pair.collateral)
    if crl_next_update is None:
        assert_agree(ours, theirs, f"{pair.id} at {expiring} nextUpdate")
        assert not expiring.endswith("crl"), "a CRL boundary that dcap-qvl accepts: update the entry"
    else:
        assert (first_expiry, expiring) == (_utc(crl_next_update), "pck_crl")
        reason = "dcap-qvl 0.7 takes a CRL as expired at nextUpdate, QVL/TEEPlane only after it"
        assert not theirs.verified, f"dcap-qvl no longer diverges: {reason}"
        assert "CrlExpired" in theirs.detail, (reason, theirs.detail)


# ---------------------------------------------------------------------------------------------
# Mutated quotes: dcap-qvl/tdx_quote with its bundle at 2025-06-25


MUTATED = Pair("dcap-qvl/tdx_quote", "dcap-qvl", True, "UpToDate")
PER_REGION = 10
REGIONS = (
    "header+body",
    "quote signature",
    "attestation key",
    "QE report",
    "QE report signature",
    "QE auth data",
    "PEM chain",
)
#: Bytes 0x2fc..0x2fd (the outer certification data type, 6 = QE report certification data) are read
#: by TEEPlane and required to be 6, as QVL's Quote::validate does for v4/v5 quotes
#: ("Quote v4 supports only 6 certification data type"). dcap-qvl 0.7 ignores the field, so a flipped
#: type still verifies there. The quote signature does not cover it, so only the parser can catch it.
CERT_DATA_TYPE_DIVERGENCE = (
    "dcap-qvl 0.7 ignores the outer certification data type; QVL and TEEPlane require 6 (QE report)"
)


@dataclass(frozen=True)
class Layout:
    regions: dict[str, range]
    cert_data_type: range
    signature_data_end: int


def _layout(quote: bytes) -> Layout:
    """Region offsets of a v4 quote, read straight from its length fields."""
    header_body = range(0, 48 + 584)
    (sig_len,) = struct.unpack_from("<I", quote, header_body.stop)
    p = header_body.stop + 4
    signature, p = range(p, p + 64), p + 64
    key, p = range(p, p + 64), p + 64
    cert_data_type, p = range(p, p + 2), p + 6
    qe_report, p = range(p, p + 384), p + 384
    qe_report_signature, p = range(p, p + 64), p + 64
    (auth_len,) = struct.unpack_from("<H", quote, p)
    auth, p = range(p + 2, p + 2 + auth_len), p + 2 + auth_len
    (pem_len,) = struct.unpack_from("<I", quote, p + 2)
    pem = range(p + 6, p + 6 + pem_len)
    assert pem.stop == header_body.stop + 4 + sig_len
    regions = {
        "header+body": header_body,
        "quote signature": signature,
        "attestation key": key,
        "QE report": qe_report,
        "QE report signature": qe_report_signature,
        "QE auth data": auth,
        "PEM chain": pem,
    }
    return Layout(regions, cert_data_type, pem.stop)


def _pem_body_offsets(quote: bytes, pem: range) -> list[int]:
    """Offsets of base64 characters of certificate bodies (not armour lines, not newlines)."""
    out: list[int] = []
    pos = pem.start
    for line in quote[pem.start : pem.stop].split(b"\n"):
        if not line.startswith(b"-----"):
            out.extend(range(pos, pos + len(line.rstrip(b"\x00"))))
        pos += len(line) + 1
    return out


def _spread(offsets: list[int] | range, n: int) -> list[int]:
    return [offsets[(i * len(offsets)) // n + len(offsets) // (2 * n)] for i in range(n)]


def _flipped(quote: bytes, offset: int) -> bytes:
    mutated = bytearray(quote)
    mutated[offset] ^= 0xFF
    return bytes(mutated)


@pytest.fixture(scope="module")
def genuine(corpus: Path) -> tuple[bytes, Collateral, dcap_qvl.QuoteCollateralV3, datetime]:
    tdx = corpus / "tdx"
    quote = (tdx / MUTATED.quote).read_bytes()
    at = _utc(SETS[MUTATED.collateral].at)
    ours = teeplane_collateral(tdx, MUTATED.collateral)
    theirs = dcap_collateral(tdx, MUTATED.collateral, quote)
    assert run_teeplane(quote, ours, at).verified and run_dcap_qvl(quote, theirs, at).verified
    return quote, ours, theirs, at


def test_layout_matches_both_parsers(genuine: tuple[bytes, Collateral, dcap_qvl.QuoteCollateralV3, datetime]) -> None:
    quote, *_ = genuine
    layout = _layout(quote)
    ours = parse_quote(quote)
    assert quote[layout.regions["quote signature"].start : layout.regions["quote signature"].stop] == ours.signature
    assert quote[layout.regions["QE auth data"].start : layout.regions["QE auth data"].stop] == ours.qe_auth_data
    pem = quote[layout.regions["PEM chain"].start : layout.regions["PEM chain"].stop]
    assert pem.rstrip(b"\x00") == ours.pck_chain
    assert dcap_qvl.parse_quote(quote).cert_chain_pem_bytes() in (pem, pem.rstrip(b"\x00"))
    assert len(quote) > layout.signature_data_end, "the sample carries trailing padding"


@pytest.mark.parametrize("region", REGIONS)
def test_one_flipped_byte_in_each_region_is_refused_by_both(
    genuine: tuple[bytes, Collateral, dcap_qvl.QuoteCollateralV3, datetime], region: str
) -> None:
    quote, ours_collateral, theirs_collateral, at = genuine
    span = _layout(quote).regions[region]
    offsets = _spread(_pem_body_offsets(quote, span) if region == "PEM chain" else span, PER_REGION)
    assert len(set(offsets)) == PER_REGION
    for offset in offsets:
        mutated = _flipped(quote, offset)
        ours = run_teeplane(mutated, ours_collateral, at)
        theirs = run_dcap_qvl(mutated, theirs_collateral, at)
        assert not ours.verified and not theirs.verified, (region, offset, ours, theirs)


def test_every_flipped_byte_gets_the_same_verdict(
    genuine: tuple[bytes, Collateral, dcap_qvl.QuoteCollateralV3, datetime],
) -> None:
    """All 5006 single-byte flips: the verdicts agree except at the certification data type."""
    quote, ours_collateral, theirs_collateral, at = genuine
    layout = _layout(quote)
    pem = layout.regions["PEM chain"]
    body = set(_pem_body_offsets(quote, pem))
    disagree: dict[int, tuple[Outcome, Outcome]] = {}
    both_accept: list[int] = []
    for offset in range(len(quote)):
        mutated = _flipped(quote, offset)
        ours = run_teeplane(mutated, ours_collateral, at)
        theirs = run_dcap_qvl(mutated, theirs_collateral, at)
        if ours.verified is not theirs.verified:
            disagree[offset] = (ours, theirs)
        elif ours.verified:
            both_accept.append(offset)
            assert (ours.tcb_status, theirs.tcb_status) == ("UpToDate", "UpToDate"), offset

    assert set(disagree) == set(layout.cert_data_type), CERT_DATA_TYPE_DIVERGENCE
    for ours, theirs in disagree.values():
        assert ours.detail == "quote.certification_data_invalid" and theirs.verified, CERT_DATA_TYPE_DIVERGENCE

    # What both tolerate: bytes after the signature data (padding, never parsed) and PEM armour or
    # line breaks (a damaged root block is dropped: both anchor on their pinned Intel root). Never
    # a byte before the PEM chain, never a base64 character of a certificate.
    trailing = range(layout.signature_data_end, len(quote))
    assert set(trailing) <= set(both_accept)
    for offset in both_accept:
        assert offset in trailing or (offset in pem and offset not in body), offset


def test_quote_five_bytes_short_is_refused_by_both(
    genuine: tuple[bytes, Collateral, dcap_qvl.QuoteCollateralV3, datetime],
) -> None:
    """Cut into the signature data: both refuse (neither reads past the declared lengths)."""
    quote, ours_collateral, theirs_collateral, at = genuine
    cut = quote[: _layout(quote).signature_data_end - 5]
    assert not run_teeplane(cut, ours_collateral, at).verified
    assert not run_dcap_qvl(cut, theirs_collateral, at).verified
