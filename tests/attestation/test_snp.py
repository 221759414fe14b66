"""SEV-SNP report parsing and appraisal: genuine corpus reports, tampering, and forged AMD chains.

Genuine evidence (corpus): go-sev-guest's and trustee's Milan v2 reports with their VCEKs and
AMD's ASK/ARK bundles. Forged evidence (made here, with our own keys under AMD's names) covers
what the corpus cannot: a foreign root, Turin TCB layout, v3/v5 reports, VLEK and masked CHIP_ID.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import EvidenceFormatError
from teeplane.attestation.snp.appraise import appraise_snp
from teeplane.attestation.snp.report import Product, SigningKey, TcbVersion, parse_report

# AMD's genuine VCEKs have serial number 0, which cryptography accepts with a deprecation warning.
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

AT = datetime(2026, 1, 1, tzinfo=UTC)
ALL_CHECKS = {
    "snp.signing_key",
    "snp.report_signature",
    "snp.vcek_chain",
    "snp.ark_pinned",
    "snp.cert_validity",
    "snp.chip_id",
    "snp.reported_tcb",
}


@dataclass(frozen=True)
class Evidence:
    report: bytes
    cert: bytes
    chain: bytes

    def appraise(self, at: datetime = AT, policy: Policy = Policy(allow_debug=True)) -> Appraisal:
        return appraise_snp(self.report, self.cert, self.chain, at, policy)

    def with_report_byte(self, offset: int, xor: int = 0x01) -> Evidence:
        report = bytearray(self.report)
        report[offset] ^= xor
        return Evidence(bytes(report), self.cert, self.chain)


def codes(appraisal: Appraisal) -> list[str]:
    return [error.code for error in appraisal.errors]


def failed_checks(appraisal: Appraisal) -> set[str]:
    return {check.name for check in appraisal.checks if not check.ok}


@pytest.fixture(scope="module")
def snp(corpus: Path) -> Path:
    return corpus / "snp"


@pytest.fixture(scope="module")
def go_sev_guest(snp: Path) -> Evidence:
    folder = snp / "go-sev-guest"
    return Evidence(
        (folder / "attestation.bin").read_bytes(),
        (folder / "vcek.testcer").read_bytes(),
        (folder / "ask_ark_milan.pem").read_bytes(),
    )


@pytest.fixture(scope="module")
def trustee(snp: Path) -> Evidence:
    folder = snp / "trustee"
    return Evidence(
        (folder / "test-report.bin").read_bytes(),
        (folder / "test-vcek.der").read_bytes(),
        (folder / "milan_ask_ark_asvk.pem").read_bytes(),
    )


@pytest.fixture(params=["go_sev_guest", "trustee"])
def genuine(request: pytest.FixtureRequest) -> Evidence:
    evidence: Evidence = request.getfixturevalue(request.param)
    return evidence


# --- genuine reports ------------------------------------------------------------------------


def test_genuine_reports_verify(genuine: Evidence) -> None:
    appraisal = genuine.appraise()
    assert appraisal.verified, codes(appraisal)
    assert appraisal.tee == "snp"
    assert appraisal.quote_version == 2
    assert appraisal.tcb_status is None
    assert {check.name for check in appraisal.checks} == ALL_CHECKS
    assert all(check.ok and check.detail for check in appraisal.checks)


def test_measurements_are_the_report_fields(genuine: Evidence) -> None:
    raw = genuine.report
    assert genuine.appraise().measurements == {
        "measurement": raw[0x90:0xC0].hex(),
        "host_data": raw[0xC0:0xE0].hex(),
        "report_data": raw[0x50:0x90].hex(),
    }


def test_debug_report_is_refused_by_default_policy_only(go_sev_guest: Evidence) -> None:
    refused = appraise_snp(go_sev_guest.report, go_sev_guest.cert, go_sev_guest.chain, AT)
    assert refused.verified and refused.debug
    assert not refused.accepted
    assert [error.code for error in refused.policy_errors] == ["policy.debug_rejected"]
    assert go_sev_guest.appraise(policy=Policy(allow_debug=True)).accepted


def test_non_debug_report_is_accepted_by_default_policy(trustee: Evidence) -> None:
    appraisal = appraise_snp(trustee.report, trustee.cert, trustee.chain, AT)
    assert not appraisal.debug
    assert appraisal.accepted
    assert appraisal.to_json()["accepted"] is True


def test_parse_reads_fields_at_their_offsets(go_sev_guest: Evidence) -> None:
    raw = go_sev_guest.report
    report = parse_report(raw)
    assert report.version == 2
    assert report.signing_key is SigningKey.VCEK
    assert report.debug
    assert report.vmpl == 0
    assert report.policy == struct.unpack_from("<Q", raw, 0x08)[0]
    assert report.chip_id == raw[0x1A0:0x1E0]
    assert report.signed_bytes == raw[:0x2A0]
    assert report.current_firmware == (raw[0x1EA], raw[0x1E9], raw[0x1E8])
    assert report.launch_tcb == struct.unpack_from("<Q", raw, 0x1F0)[0]
    assert report.signature_r == int.from_bytes(raw[0x2A0:0x2E8], "little")
    assert report.cpuid_family is None and report.launch_mit_vector is None
    assert TcbVersion.decode(report.reported_tcb, Product.MILAN) == TcbVersion(
        bootloader=raw[0x180], tee=raw[0x181], snp=raw[0x186], microcode=raw[0x187]
    )


def test_cert_is_accepted_as_pem_or_der(trustee: Evidence) -> None:
    pem = x509.load_der_x509_certificate(trustee.cert).public_bytes(serialization.Encoding.PEM)
    assert Evidence(trustee.report, pem, trustee.chain).appraise().verified


# --- tampering ------------------------------------------------------------------------------


def test_flipped_byte_in_signed_part_breaks_the_signature(genuine: Evidence) -> None:
    appraisal = genuine.with_report_byte(0x90).appraise()  # first MEASUREMENT byte
    assert codes(appraisal) == ["snp.signature_invalid"]
    assert failed_checks(appraisal) == {"snp.report_signature"}


def test_flipped_signature_byte_breaks_the_signature(genuine: Evidence) -> None:
    appraisal = genuine.with_report_byte(0x2A0).appraise()  # first byte of R
    assert codes(appraisal) == ["snp.signature_invalid"]


def test_other_chip_id_breaks_signature_and_chip_binding(genuine: Evidence) -> None:
    appraisal = genuine.with_report_byte(0x1A0 + 17).appraise()
    assert set(codes(appraisal)) == {"snp.signature_invalid", "snp.chip_id_mismatch"}
    assert failed_checks(appraisal) == {"snp.report_signature", "snp.chip_id"}


def test_other_reported_tcb_breaks_signature_and_tcb_binding(genuine: Evidence) -> None:
    appraisal = genuine.with_report_byte(0x187).appraise()  # microcode SPL
    assert set(codes(appraisal)) == {"snp.signature_invalid", "snp.tcb_mismatch"}


def test_report_claiming_a_vlek_is_refused(trustee: Evidence) -> None:
    appraisal = trustee.with_report_byte(0x48, xor=1 << 2).appraise()  # SIGNING_KEY = VLEK
    assert "snp.signing_key" in failed_checks(appraisal)
    assert set(codes(appraisal)) == {"snp.signature_invalid"}


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_trustee_invalid_vceks_are_refused(trustee: Evidence, snp: Path, name: str) -> None:
    cert = (snp / "trustee" / name).read_bytes()
    appraisal = Evidence(trustee.report, cert, trustee.chain).appraise()
    assert not appraisal.verified
    assert set(codes(appraisal)) == {
        "snp.signature_invalid",
        "snp.chain_invalid",
        "snp.chip_id_mismatch",
        "snp.tcb_mismatch",
    }


def test_genoa_chain_for_a_milan_vcek_is_refused(go_sev_guest: Evidence, snp: Path) -> None:
    chain = (snp / "go-sev-guest" / "ask_ark_genoa.pem").read_bytes()
    appraisal = Evidence(go_sev_guest.report, go_sev_guest.cert, chain).appraise()
    assert codes(appraisal) == ["snp.chain_invalid"]
    assert failed_checks(appraisal) == {"snp.vcek_chain"}


def test_milan_ask_under_genoa_ark_is_refused(go_sev_guest: Evidence, snp: Path) -> None:
    milan_ask = x509.load_pem_x509_certificates(go_sev_guest.chain)[0]
    genoa_ark = x509.load_pem_x509_certificates((snp / "go-sev-guest" / "ask_ark_genoa.pem").read_bytes())[1]
    chain = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (milan_ask, genoa_ark))
    appraisal = Evidence(go_sev_guest.report, go_sev_guest.cert, chain).appraise()
    assert codes(appraisal) == ["snp.chain_invalid"]
    assert "ARK" in appraisal.errors[0].message


def test_asvk_chain_does_not_issue_a_vcek(go_sev_guest: Evidence, snp: Path) -> None:
    chain = (snp / "go-sev-guest" / "ask_ark_milan_vlek.pem").read_bytes()
    appraisal = Evidence(go_sev_guest.report, go_sev_guest.cert, chain).appraise()
    assert codes(appraisal) == ["snp.chain_invalid"]


def test_vcek_past_not_after_is_expired(go_sev_guest: Evidence) -> None:
    vcek = x509.load_der_x509_certificate(go_sev_guest.cert)
    appraisal = go_sev_guest.appraise(at=vcek.not_valid_after_utc + timedelta(seconds=1))
    assert codes(appraisal) == ["snp.certificate_expired"]
    assert failed_checks(appraisal) == {"snp.cert_validity"}


def test_vcek_before_not_before_is_refused(go_sev_guest: Evidence) -> None:
    vcek = x509.load_der_x509_certificate(go_sev_guest.cert)
    appraisal = go_sev_guest.appraise(at=vcek.not_valid_before_utc - timedelta(days=1))
    assert codes(appraisal) == ["snp.certificate_expired"]


def test_naive_evaluation_time_is_utc(go_sev_guest: Evidence) -> None:
    vcek = x509.load_der_x509_certificate(go_sev_guest.cert)
    just_after = (vcek.not_valid_after_utc + timedelta(seconds=1)).replace(tzinfo=None)
    assert codes(go_sev_guest.appraise(at=just_after)) == ["snp.certificate_expired"]
    assert go_sev_guest.appraise(at=just_after - timedelta(seconds=2)).verified


# --- unreadable input -----------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 4, 0x2A0, 0x49F, 0x4A1])
def test_wrong_report_size_is_malformed(go_sev_guest: Evidence, length: int) -> None:
    report = (go_sev_guest.report + b"\0")[:length]
    with pytest.raises(EvidenceFormatError) as caught:
        appraise_snp(report, go_sev_guest.cert, go_sev_guest.chain, AT)
    assert caught.value.code == "snp.report_malformed"


@pytest.mark.parametrize("version", [0, 1, 4, 6, 0xFFFFFFFF])
def test_unsupported_version_is_a_typed_error(go_sev_guest: Evidence, version: int) -> None:
    report = struct.pack("<I", version) + go_sev_guest.report[4:]
    with pytest.raises(EvidenceFormatError) as caught:
        parse_report(report)
    assert caught.value.code == "snp.unsupported_version"
    assert str(version) in caught.value.message


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0x48, 2 << 2),  # SIGNING_KEY 2 is undefined
        (0x4B, 0x80),  # flags bit 31 is reserved
        (0x4C, 1),  # reserved word after the flags
        (0x188, 1),  # reserved in v2 (CPUID family from v3 on)
        (0x1EB, 1),  # reserved after CURRENT firmware version
        (0x200, 1),  # reserved before the signature (a v5 mitigation vector)
        (0x4A0 - 1, 1),  # padding after the ECDSA signature
    ],
)
def test_reserved_bits_set_are_malformed(go_sev_guest: Evidence, offset: int, value: int) -> None:
    report = bytearray(go_sev_guest.report)
    report[offset] |= value
    with pytest.raises(EvidenceFormatError) as caught:
        parse_report(bytes(report))
    assert caught.value.code == "snp.report_malformed"
    assert caught.value.where is not None


@pytest.mark.parametrize("cert", [b"", b"\x30\x82\x01", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_unreadable_cert_is_malformed(go_sev_guest: Evidence, cert: bytes) -> None:
    with pytest.raises(EvidenceFormatError) as caught:
        appraise_snp(go_sev_guest.report, cert, go_sev_guest.chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


def test_ask_given_as_vcek_is_malformed(go_sev_guest: Evidence) -> None:
    ask = x509.load_pem_x509_certificates(go_sev_guest.chain)[0]
    with pytest.raises(EvidenceFormatError, match="not hold an ECDSA P-384") as caught:
        appraise_snp(go_sev_guest.report, ask.public_bytes(serialization.Encoding.DER), go_sev_guest.chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


@pytest.mark.parametrize("chain", [b"", b"not a pem bundle", b"-----BEGIN CERTIFICATE-----\nAA==\n-----END"])
def test_unreadable_chain_is_malformed(go_sev_guest: Evidence, chain: bytes) -> None:
    with pytest.raises(EvidenceFormatError) as caught:
        appraise_snp(go_sev_guest.report, go_sev_guest.cert, chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


# --- forged AMD chains ----------------------------------------------------------------------

KDS = "1.3.6.1.4.1.3704.1"
NOT_BEFORE = datetime(2024, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2030, 1, 1, tzinfo=UTC)
AMD_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag, len(content)]) + content


def _spl(value: int) -> bytes:
    return _der(0x02, value.to_bytes(2 if value > 0x7F else 1, "big"))


def _issue(
    cn: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer_cn: str,
    issuer_key: rsa.RSAPrivateKey,
    extensions: dict[str, bytes] | None = None,
    *,
    ca: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(public_key)
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    for oid, value in (extensions or {}).items():
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=AMD_PSS)


@dataclass(frozen=True)
class ForgedAmd:
    """A foreign ARK -> intermediate chain under AMD's names, and a VCEK/VLEK key it endorses."""

    intermediate_cn: str
    intermediate_key: rsa.RSAPrivateKey
    chain: bytes
    leaf_key: ec.EllipticCurvePrivateKey

    def leaf(self, extensions: dict[str, bytes], cn: str = "SEV-VCEK") -> bytes:
        cert = _issue(cn, self.leaf_key.public_key(), self.intermediate_cn, self.intermediate_key, extensions)
        return cert.public_bytes(serialization.Encoding.DER)

    def sign(self, report: bytearray) -> bytes:
        der = self.leaf_key.sign(bytes(report[:0x2A0]), ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        report[0x2A0:0x2E8] = r.to_bytes(72, "little")
        report[0x2E8:0x330] = s.to_bytes(72, "little")
        return bytes(report)


def _forge_chain(
    product: str,
    intermediate_cn: str,
    *,
    intermediate_is_ca: bool = True,
    ark_self_signer: rsa.RSAPrivateKey | None = None,
) -> ForgedAmd:
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ark_cn = f"ARK-{product}"
    ark = _issue(ark_cn, ark_key.public_key(), ark_cn, ark_self_signer or ark_key, ca=True)
    intermediate = _issue(intermediate_cn, intermediate_key.public_key(), ark_cn, ark_key, ca=intermediate_is_ca)
    chain = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (intermediate, ark))
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    return ForgedAmd(intermediate_cn, intermediate_key, chain, leaf_key)


@pytest.fixture(scope="module")
def forged_milan() -> ForgedAmd:
    return _forge_chain("Milan", "SEV-Milan")


@pytest.fixture(scope="module")
def forged_turin() -> ForgedAmd:
    return _forge_chain("Turin", "SEV-Turin")


def _report(version: int = 2, flags: int = 0, reported_tcb: bytes = bytes(8), chip_id: bytes = bytes(64)) -> bytearray:
    report = bytearray(0x4A0)
    struct.pack_into("<IIQ", report, 0, version, 1, 0x30000)
    struct.pack_into("<II", report, 0x30, 0, 1)  # VMPL 0, ECDSA P-384 SHA-384
    struct.pack_into("<I", report, 0x48, flags)
    report[0x90:0xC0] = bytes(range(48))
    report[0x180:0x188] = reported_tcb
    report[0x1A0:0x1E0] = chip_id
    return report


MILAN_CHIP_ID = bytes(range(100, 164))
MILAN_TCB = bytes([3, 0, 0, 0, 0, 0, 8, 115])  # bootloader, tee, 4 reserved, snp, microcode
MILAN_VCEK_EXTENSIONS = {
    f"{KDS}.2": _der(0x16, b"Milan-B0"),
    f"{KDS}.3.1": _spl(3),
    f"{KDS}.3.2": _spl(0),
    f"{KDS}.3.3": _spl(8),
    f"{KDS}.3.8": _spl(115),
    f"{KDS}.4": MILAN_CHIP_ID,
}


def test_forged_chain_under_amd_names_fails_only_the_ark_pin(forged_milan: ForgedAmd) -> None:
    report = forged_milan.sign(_report(reported_tcb=MILAN_TCB, chip_id=MILAN_CHIP_ID))
    appraisal = appraise_snp(report, forged_milan.leaf(MILAN_VCEK_EXTENSIONS), forged_milan.chain, AT)
    assert codes(appraisal) == ["snp.chain_invalid"]
    assert failed_checks(appraisal) == {"snp.ark_pinned"}
    assert "not AMD's published ARK-Milan" in appraisal.errors[0].message


def test_genuine_vcek_under_forged_chain_fails_its_signature_link(
    go_sev_guest: Evidence, forged_milan: ForgedAmd
) -> None:
    # The forged chain uses CN-only names; re-issue it under the genuine VCEK's issuer DN.
    vcek = x509.load_der_x509_certificate(go_sev_guest.cert)
    ark_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ark_name = x509.load_pem_x509_certificates(go_sev_guest.chain)[1].subject
    builder = x509.CertificateBuilder().not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
    builder = builder.serial_number(1).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    ark = builder.subject_name(ark_name).issuer_name(ark_name).public_key(ark_key.public_key())
    ask = builder.subject_name(vcek.issuer).issuer_name(ark_name).public_key(forged_milan.intermediate_key.public_key())
    chain = b"".join(
        cert.sign(ark_key, hashes.SHA384(), rsa_padding=AMD_PSS).public_bytes(serialization.Encoding.PEM)
        for cert in (ask, ark)
    )
    appraisal = Evidence(go_sev_guest.report, go_sev_guest.cert, chain).appraise()
    assert failed_checks(appraisal) == {"snp.vcek_chain", "snp.ark_pinned"}
    assert codes(appraisal) == ["snp.chain_invalid", "snp.chain_invalid"]
    assert "not signed by the ASK" in appraisal.errors[0].message


def test_intermediate_that_is_not_a_ca_is_refused() -> None:
    forged = _forge_chain("Milan", "SEV-Milan", intermediate_is_ca=False)
    report = forged.sign(_report(reported_tcb=MILAN_TCB, chip_id=MILAN_CHIP_ID))
    appraisal = appraise_snp(report, forged.leaf(MILAN_VCEK_EXTENSIONS), forged.chain, AT)
    assert failed_checks(appraisal) == {"snp.vcek_chain", "snp.ark_pinned"}
    assert "the ASK is not a CA" in appraisal.errors[0].message


def test_ark_that_is_not_self_signed_is_refused() -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = _forge_chain("Milan", "SEV-Milan", ark_self_signer=other_key)
    report = forged.sign(_report(reported_tcb=MILAN_TCB, chip_id=MILAN_CHIP_ID))
    appraisal = appraise_snp(report, forged.leaf(MILAN_VCEK_EXTENSIONS), forged.chain, AT)
    assert failed_checks(appraisal) == {"snp.vcek_chain", "snp.ark_pinned"}
    assert "the ARK certificate is not signed by the ARK key" in appraisal.errors[0].message


def test_unknown_signature_algorithm_is_refused(forged_milan: ForgedAmd) -> None:
    unsigned = _report(reported_tcb=MILAN_TCB, chip_id=MILAN_CHIP_ID)
    struct.pack_into("<I", unsigned, 0x34, 2)
    report = forged_milan.sign(unsigned)
    appraisal = appraise_snp(report, forged_milan.leaf(MILAN_VCEK_EXTENSIONS), forged_milan.chain, AT)
    assert failed_checks(appraisal) == {"snp.report_signature", "snp.ark_pinned"}
    assert "SIGNATURE_ALGO 2" in appraisal.errors[0].message


@pytest.mark.parametrize("version", [3, 5])
def test_v3_and_v5_reports_parse_and_verify(forged_milan: ForgedAmd, version: int) -> None:
    unsigned = _report(version=version, reported_tcb=MILAN_TCB, chip_id=MILAN_CHIP_ID)
    unsigned[0x188:0x18B] = bytes([0x19, 0x01, 0x01])  # Milan CPUID family, model, stepping
    if version == 5:
        struct.pack_into("<QQ", unsigned, 0x1F8, 0x5, 0x7)
    report = forged_milan.sign(unsigned)
    parsed = parse_report(report)
    assert (parsed.cpuid_family, parsed.cpuid_model, parsed.cpuid_stepping) == (0x19, 0x01, 0x01)
    assert (parsed.launch_mit_vector, parsed.current_mit_vector) == ((5, 7) if version == 5 else (None, None))
    appraisal = appraise_snp(report, forged_milan.leaf(MILAN_VCEK_EXTENSIONS), forged_milan.chain, AT)
    assert appraisal.quote_version == version
    assert failed_checks(appraisal) == {"snp.ark_pinned"}


TURIN_CHIP_ID = bytes(range(1, 9))
TURIN_VCEK_EXTENSIONS = {
    f"{KDS}.2": _der(0x16, b"Turin-B0"),
    f"{KDS}.3.1": _spl(1),
    f"{KDS}.3.2": _spl(2),
    f"{KDS}.3.3": _spl(3),
    f"{KDS}.3.8": _spl(200),
    f"{KDS}.3.9": _spl(4),
    f"{KDS}.4": _der(0x04, TURIN_CHIP_ID),
}


def test_turin_tcb_layout_and_short_hw_id(forged_turin: ForgedAmd) -> None:
    turin_tcb = bytes([4, 1, 2, 3, 0, 0, 0, 200])  # fmc, bootloader, tee, snp, 3 reserved, microcode
    report = forged_turin.sign(_report(reported_tcb=turin_tcb, chip_id=TURIN_CHIP_ID + bytes(56)))
    appraisal = appraise_snp(report, forged_turin.leaf(TURIN_VCEK_EXTENSIONS), forged_turin.chain, AT)
    assert failed_checks(appraisal) == {"snp.ark_pinned"}
    assert "fmc=4 bootloader=1 tee=2 snp=3 microcode=200" in appraisal.checks[-1].detail


def test_turin_tcb_read_with_milan_layout_mismatches(forged_turin: ForgedAmd) -> None:
    milan_layout = bytes([1, 2, 0, 0, 0, 0, 3, 200])  # right values, pre-Turin byte positions
    report = forged_turin.sign(_report(reported_tcb=milan_layout, chip_id=TURIN_CHIP_ID + bytes(56)))
    appraisal = appraise_snp(report, forged_turin.leaf(TURIN_VCEK_EXTENSIONS), forged_turin.chain, AT)
    assert failed_checks(appraisal) == {"snp.ark_pinned", "snp.reported_tcb"}
    assert "snp.tcb_mismatch" in codes(appraisal)


def test_vlek_is_not_chip_bound(forged_milan: ForgedAmd) -> None:
    vlek_chain = _forge_chain("Milan", "SEV-VLEK-Milan")
    extensions = {**MILAN_VCEK_EXTENSIONS, f"{KDS}.5": _der(0x16, b"ExampleCSP")}
    del extensions[f"{KDS}.4"]
    report = vlek_chain.sign(_report(flags=1 << 2, reported_tcb=MILAN_TCB, chip_id=bytes(range(64))))
    appraisal = appraise_snp(report, vlek_chain.leaf(extensions, cn="SEV-VLEK"), vlek_chain.chain, AT)
    assert failed_checks(appraisal) == {"snp.ark_pinned"}
    assert "snp.chip_id" not in {check.name for check in appraisal.checks}
    assert "issued to ExampleCSP" in appraisal.checks[0].detail
    assert "VLEK <- ASVK <- ARK" in next(c.detail for c in appraisal.checks if c.name == "snp.vcek_chain")


def test_masked_chip_id_is_not_compared(forged_milan: ForgedAmd) -> None:
    report = forged_milan.sign(_report(flags=1 << 1, reported_tcb=MILAN_TCB))
    appraisal = appraise_snp(report, forged_milan.leaf(MILAN_VCEK_EXTENSIONS), forged_milan.chain, AT)
    chip_check = next(check for check in appraisal.checks if check.name == "snp.chip_id")
    assert chip_check.ok and "MASK_CHIP_ID=1" in chip_check.detail


@pytest.mark.parametrize(
    ("oid", "value", "message"),
    [
        (f"{KDS}.3.3", _der(0x02, b"\xff"), "not a security patch level"),
        (f"{KDS}.3.3", b"\x02\x05\x01", "DER length"),
        (f"{KDS}.3.3", _der(0x04, b"\x01"), "expected DER tag"),
        (f"{KDS}.4", _der(0x04, bytes(63)), "hwID: 63 bytes"),
        (f"{KDS}.2", _der(0x16, b"Venice-A0"), "unsupported AMD product"),
        (f"{KDS}.5", _der(0x16, b"CSP"), "exactly one of hwID"),
    ],
)
def test_malformed_amd_extensions_are_refused(forged_milan: ForgedAmd, oid: str, value: bytes, message: str) -> None:
    cert = forged_milan.leaf({**MILAN_VCEK_EXTENSIONS, oid: value})
    with pytest.raises(EvidenceFormatError, match=message) as caught:
        appraise_snp(forged_milan.sign(_report()), cert, forged_milan.chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


def test_p384_cert_without_amd_extensions_is_malformed(forged_milan: ForgedAmd) -> None:
    with pytest.raises(EvidenceFormatError, match="productName") as caught:
        appraise_snp(forged_milan.sign(_report()), forged_milan.leaf({}), forged_milan.chain, AT)
    assert caught.value.code == "snp.certificate_malformed"


def test_missing_spl_extension_is_refused(forged_milan: ForgedAmd) -> None:
    extensions = {oid: value for oid, value in MILAN_VCEK_EXTENSIONS.items() if oid != f"{KDS}.3.8"}
    with pytest.raises(EvidenceFormatError, match="ucodeSPL"):
        appraise_snp(forged_milan.sign(_report()), forged_milan.leaf(extensions), forged_milan.chain, AT)
