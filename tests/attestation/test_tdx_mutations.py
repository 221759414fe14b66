"""Mutation tests: a genuine quote with one byte changed anywhere is refused with a specific code."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from teeplane.attestation.appraisal import Appraisal
from teeplane.attestation.errors import Code
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import Collateral, SignedDocument, load_bundle
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import intel_root
from teeplane.errors import TeeplaneError

pytestmark = pytest.mark.corpus

AT = datetime(2025, 6, 25, tzinfo=UTC)
HEADER_BODY = range(0, 48 + 584)
SIG_START = 48 + 584 + 4
SIGNATURE = range(SIG_START, SIG_START + 64)
ATTESTATION_KEY = range(SIG_START + 64, SIG_START + 128)
QE_REPORT = range(SIG_START + 128 + 6, SIG_START + 128 + 6 + 384)
QE_REPORT_SIGNATURE = range(QE_REPORT.stop, QE_REPORT.stop + 64)
QE_AUTH_DATA = range(QE_REPORT_SIGNATURE.stop + 2, QE_REPORT_SIGNATURE.stop + 2 + 32)
KNOWN_CODES = {c.value for c in Code}
PARSE_CODES = {"quote.unsupported_version", "quote.unsupported_key_type", "quote.unsupported_tee_type"}


@pytest.fixture(scope="module")
def genuine(corpus: Path) -> tuple[bytes, Collateral]:
    tdx = corpus / "tdx/dcap-qvl"
    quote = (tdx / "tdx_quote").read_bytes()
    collateral = load_bundle((tdx / "tdx_quote_collateral.json").read_bytes())
    assert appraise(quote, collateral).accepted, "the unmutated quote must be accepted"
    return quote, collateral


def appraise(quote: bytes, collateral: Collateral) -> Appraisal:
    return appraise_quote(parse_quote(quote), collateral, intel_root(), AT)


def codes_after_flip(quote: bytes, collateral: Collateral, offset: int) -> set[str]:
    """Error codes of the appraisal of `quote` with byte `offset` inverted (parse errors too)."""
    mutated = bytearray(quote)
    mutated[offset] ^= 0xFF
    try:
        result = appraise(bytes(mutated), collateral)
    except TeeplaneError as error:
        return {error.code}
    assert not result.verified
    return {e.code for e in result.errors}


def test_layout_offsets_match_the_parser(genuine: tuple[bytes, Collateral]) -> None:
    quote, _ = genuine
    q = parse_quote(quote)
    assert quote[SIGNATURE.start : SIGNATURE.stop] == q.signature
    assert quote[ATTESTATION_KEY.start : ATTESTATION_KEY.stop] == q.attestation_key
    assert quote[QE_REPORT.start : QE_REPORT.stop] == q.qe_report.raw
    assert quote[QE_REPORT_SIGNATURE.start : QE_REPORT_SIGNATURE.stop] == q.qe_report_signature
    assert quote[QE_AUTH_DATA.start : QE_AUTH_DATA.stop] == q.qe_auth_data


def test_every_signed_header_and_body_byte(genuine: tuple[bytes, Collateral]) -> None:
    quote, collateral = genuine
    for offset in HEADER_BODY:
        codes = codes_after_flip(quote, collateral, offset)
        assert "quote.signature_invalid" in codes or codes & PARSE_CODES, (offset, codes)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (SIGNATURE, {"quote.signature_invalid"}),
        (QE_REPORT, {"qe.report_signature_invalid"}),
        (QE_REPORT_SIGNATURE, {"qe.report_signature_invalid"}),
        (QE_AUTH_DATA, {"qe.report_data_mismatch"}),
    ],
    ids=["signature", "qe_report", "qe_report_signature", "qe_auth_data"],
)
def test_every_byte_of_signature_data(genuine: tuple[bytes, Collateral], region: range, expected: set[str]) -> None:
    quote, collateral = genuine
    for offset in region:
        codes = codes_after_flip(quote, collateral, offset)
        assert expected <= codes, (offset, codes)


def test_every_attestation_key_byte(genuine: tuple[bytes, Collateral]) -> None:
    quote, collateral = genuine
    for offset in ATTESTATION_KEY:
        codes = codes_after_flip(quote, collateral, offset)
        assert "qe.report_data_mismatch" in codes, (offset, codes)
        assert codes & {"quote.signature_invalid", "quote.attestation_key_invalid"}, (offset, codes)


def _pem_chain(quote: bytes) -> tuple[int, list[bytes]]:
    """Offset of the PEM chain in the quote and the DER of each certificate in it."""
    chain = parse_quote(quote).pck_chain
    start = quote.index(chain)
    ders = [base64.b64decode(b) for b in re.findall(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", chain, re.S)]
    return start, ders


def _with_chain(quote: bytes, ders: list[bytes]) -> bytes:
    """The quote with its PCK chain replaced (sizes fixed up so it still parses)."""
    q = parse_quote(quote)
    pem = b"".join(
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(d) + b"-----END CERTIFICATE-----\n" for d in ders
    )
    start = quote.index(q.pck_chain)
    size_at = start - 4
    old_len = int.from_bytes(quote[size_at:start], "little")
    delta = len(pem) + 1 - old_len
    out = bytearray(quote[:size_at] + (len(pem) + 1).to_bytes(4, "little") + pem + b"\0")
    outer_size_at = SIG_START + 128 + 2
    for at in (outer_size_at, SIG_START - 4):
        value = int.from_bytes(out[at : at + 4], "little") + delta
        out[at : at + 4] = value.to_bytes(4, "little")
    return bytes(out)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["pck_leaf", "pck_ca", "root"])
def test_certificate_bytes(genuine: tuple[bytes, Collateral], index: int) -> None:
    quote, collateral = genuine
    _, ders = _pem_chain(quote)
    assert appraise(_with_chain(quote, ders), collateral).accepted  # re-encoding alone changes nothing
    for offset in range(4, len(ders[index]), 5):
        mutated = list(ders)
        cert = bytearray(mutated[index])
        cert[offset] ^= 0x01
        mutated[index] = bytes(cert)
        result = appraise(_with_chain(quote, mutated), collateral)
        chain_check = next(c for c in result.checks if c.name == "pck.chain")
        assert not chain_check.ok, (index, offset)
        assert result.errors[0].code in KNOWN_CODES, (index, offset, result.errors[0].code)


def test_pck_leaf_from_another_platform(genuine: tuple[bytes, Collateral], corpus: Path) -> None:
    quote, collateral = genuine
    _, ders = _pem_chain(quote)
    _, other = _pem_chain(
        (corpus / "tdx/flashtestations/0xc200F222043C5BC6c70aA6e35f5c5fDE079f3A04_quote.bin").read_bytes()
    )
    assert other[0] != ders[0]
    result = appraise(_with_chain(quote, [other[0], *ders[1:]]), collateral)
    codes = {e.code for e in result.errors}
    assert "qe.report_signature_invalid" in codes


def test_chain_ending_in_another_root(genuine: tuple[bytes, Collateral], corpus: Path) -> None:
    quote, collateral = genuine
    _, ders = _pem_chain(quote)
    qvl = (corpus / "tdx/intel-qvl-sampledata/trustedRootCaCert.pem").read_bytes()
    foreign_root = base64.b64decode(re.findall(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", qvl, re.S)[0])
    result = appraise(_with_chain(quote, [*ders[:2], foreign_root]), collateral)
    assert {e.code for e in result.errors} & {"cert.untrusted_root", "cert.chain_invalid"}


def test_tcb_info_for_another_fmspc(genuine: tuple[bytes, Collateral], corpus: Path) -> None:
    quote, collateral = genuine
    other = load_bundle((corpus / "tdx/dcap-qvl/tdx_quote_outdated_collateral.json").read_bytes())
    assert other.tcb_info_model.fmspc != collateral.tcb_info_model.fmspc
    mixed = replace(collateral, tcb_info=other.tcb_info, tcb_info_chain=other.tcb_info_chain)
    at = datetime(2026, 2, 25, tzinfo=UTC)
    result = appraise_quote(parse_quote(quote), mixed, intel_root(), at)
    assert "collateral.fmspc_mismatch" in {e.code for e in result.errors}


@pytest.mark.parametrize("field", ["tcb_info", "qe_identity"])
def test_tampered_signed_collateral(genuine: tuple[bytes, Collateral], field: str) -> None:
    quote, collateral = genuine
    doc: SignedDocument = getattr(collateral, field)
    body = json.loads(doc.raw)
    body["tcbEvaluationDataNumber"] += 1
    forged = replace(doc, raw=json.dumps(body, separators=(",", ":")).encode())
    result = appraise(quote, replace(collateral, **{field: forged}))
    assert "collateral.signature_invalid" in {e.code for e in result.errors}
    flipped = bytearray(doc.signature)
    flipped[10] ^= 1
    result = appraise(quote, replace(collateral, **{field: replace(doc, signature=bytes(flipped))}))
    assert "collateral.signature_invalid" in {e.code for e in result.errors}


@pytest.mark.parametrize("field", ["pck_crl", "root_ca_crl"])
def test_tampered_crl(genuine: tuple[bytes, Collateral], field: str) -> None:
    quote, collateral = genuine
    der = bytearray(bytes.fromhex(getattr(collateral, field).decode()))
    der[len(der) // 2] ^= 0x01  # inside the signed TBS list
    result = appraise(quote, replace(collateral, **{field: bytes(der).hex().encode()}))
    assert {e.code for e in result.errors} & {"crl.signature_invalid", "collateral.malformed"}


def test_crls_swapped_are_refused_for_the_wrong_issuer(genuine: tuple[bytes, Collateral]) -> None:
    quote, collateral = genuine
    swapped = replace(collateral, pck_crl=collateral.root_ca_crl, root_ca_crl=collateral.pck_crl)
    codes = {e.code for e in appraise(quote, swapped).errors}
    assert "crl.issuer_mismatch" in codes


def test_without_crls_nothing_is_verified(genuine: tuple[bytes, Collateral]) -> None:
    quote, collateral = genuine
    result = appraise(quote, replace(collateral, pck_crl=None, root_ca_crl=None))
    assert not result.verified
    assert {e.code for e in result.errors} == {"collateral.missing"}
