"""Property tests: untrusted SEV-SNP reports, certificates and chains fail only with typed errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from teeplane.attestation.appraisal import Appraisal
from teeplane.attestation.errors import EvidenceFormatError
from teeplane.attestation.snp.appraise import appraise_snp
from teeplane.attestation.snp.report import REPORT_SIZE, SnpReport, parse_report

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

AT = datetime(2026, 1, 1, tzinfo=UTC)
FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=300)

#: (offset, xor mask) edits applied to a genuine report or certificate.
edits = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=0xFF)), max_size=8)


def _mutate(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    mutated = bytearray(data)
    for offset, mask in changes:
        mutated[offset % len(mutated)] ^= mask
    return bytes(mutated)


def _pem(der: bytes) -> bytes:
    return b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"


#: Random certificates: raw bytes, and raw bytes in PEM armour.
random_certs = st.one_of(st.binary(max_size=2048), st.binary(max_size=2048).map(_pem))


@pytest.fixture(scope="module")
def genuine(corpus: Path) -> tuple[bytes, bytes, bytes]:
    folder = corpus / "snp" / "trustee"
    return (
        (folder / "test-report.bin").read_bytes(),
        (folder / "test-vcek.der").read_bytes(),
        (folder / "milan_ask_ark_asvk.pem").read_bytes(),
    )


def _parse_or_typed_error(data: bytes) -> SnpReport | None:
    try:
        return parse_report(data)
    except EvidenceFormatError as error:
        assert error.code in {"snp.report_malformed", "snp.unsupported_version"}
        assert error.where is not None
        return None


@given(st.binary(max_size=2 * REPORT_SIZE))
def test_random_bytes_of_any_size_fail_typed(data: bytes) -> None:
    assert _parse_or_typed_error(data) is None or len(data) == REPORT_SIZE


@given(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_random_reports_parse_or_fail_typed(data: bytes) -> None:
    report = _parse_or_typed_error(data)
    assert report is None or report.raw == data


@FIXTURES_OK
@given(changes=edits)
def test_mutated_reports_parse_or_fail_typed(
    genuine: tuple[bytes, bytes, bytes], changes: list[tuple[int, int]]
) -> None:
    mutated = _mutate(genuine[0], changes)
    report = _parse_or_typed_error(mutated)
    assert report is None or report.signed_bytes == mutated[:0x2A0]


@FIXTURES_OK
@given(changes=edits)
def test_mutated_reports_appraise_or_fail_typed(
    genuine: tuple[bytes, bytes, bytes], changes: list[tuple[int, int]]
) -> None:
    report, cert, chain = genuine
    mutated = _mutate(report, changes)
    try:
        appraisal = appraise_snp(mutated, cert, chain, AT)
    except EvidenceFormatError as error:
        assert error.code in {"snp.report_malformed", "snp.unsupported_version"}
        return
    assert isinstance(appraisal, Appraisal)
    assert appraisal.verified == (mutated == report)


@FIXTURES_OK
@given(cert=random_certs)
def test_random_bytes_as_cert_fail_typed(genuine: tuple[bytes, bytes, bytes], cert: bytes) -> None:
    report, _, chain = genuine
    with pytest.raises(EvidenceFormatError) as caught:
        appraise_snp(report, cert, chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


@FIXTURES_OK
@given(changes=edits)
@example(changes=[(553, 2)])  # a duplicated snpSPL extension (x509.DuplicateExtension)
def test_mutated_certs_appraise_or_fail_typed(
    genuine: tuple[bytes, bytes, bytes], changes: list[tuple[int, int]]
) -> None:
    report, cert, chain = genuine
    mutated = _mutate(cert, changes)
    try:
        appraisal = appraise_snp(report, mutated, chain, AT)
    except EvidenceFormatError as error:
        assert error.code == "snp.certificate_malformed"
        return
    if appraisal.verified:  # only if what AMD signed is unchanged
        signed = x509.load_der_x509_certificate(cert).tbs_certificate_bytes
        assert x509.load_der_x509_certificate(mutated).tbs_certificate_bytes == signed


@FIXTURES_OK
@given(which=st.integers(min_value=0, max_value=2), changes=edits)
# Single bit flips in the ASK that make cryptography raise something other than ValueError:
@example(which=0, changes=[(12, 1)])  # X.509 version 3 (InvalidVersion)
@example(which=0, changes=[(97, 1)])  # issuer attribute with an unknown string tag (KeyError)
@example(which=0, changes=[(123, 16)])  # issuer attribute as a BIT STRING (TypeError)
@example(which=0, changes=[(379, 2)])  # unknown public key algorithm (UnsupportedAlgorithm)
def test_mutated_chains_appraise_or_fail_typed(
    genuine: tuple[bytes, bytes, bytes], which: int, changes: list[tuple[int, int]]
) -> None:
    report, cert, chain = genuine
    ders = [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(chain)]
    ders[which] = _mutate(ders[which], changes)
    try:
        appraisal = appraise_snp(report, cert, b"".join(map(_pem, ders)), AT)
    except EvidenceFormatError as error:
        assert error.code == "snp.certificate_malformed"
        return
    assert isinstance(appraisal, Appraisal)
