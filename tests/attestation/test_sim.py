"""The simulated TDX module: its quotes pass the real DCAP appraisal only under the simulation root.

Everything here is generated: a SimulationAuthority (root, PCK CA, PCK, TCB signing, CRLs,
attestation key), its collateral bundle, and quotes of a SimulatedTd. No corpus is needed.
"""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import EvidenceFormatError
from teeplane.attestation.sim import platform
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.der import encode_sgx_extensions
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.tdx.pck import PckExtensions, decode_sgx_extensions, parse_pck_extensions
from teeplane.attestation.tdx.quote import HEADER_SIZE, TD10_BODY_SIZE, parse_quote
from teeplane.attestation.trust import TrustAnchor, intel_root

AT = datetime(2026, 1, 1, tzinfo=UTC)
ALLOW_SIM = Policy(allow_simulated=True)
MRTD = hashlib.sha384(b"td image").digest()
MRCONFIGID = hashlib.sha384(b"initdata").digest()
REPORT_DATA = hashlib.sha512(b"nonce || public key").digest()
MRTD_OFFSET = HEADER_SIZE + 16 + 48 + 48 + 8 + 8 + 8


@pytest.fixture(scope="module")
def authority() -> SimulationAuthority:
    return SimulationAuthority.generate(AT)


@pytest.fixture
def td(authority: SimulationAuthority) -> SimulatedTd:
    td = SimulatedTd(authority, mrtd=MRTD, mrconfigid=MRCONFIGID)
    td.extend_rtmr_event(1, b"kernel")
    td.extend_rtmr_event(2, b"initrd")
    td.extend_rtmr(3, hashlib.sha384(b"container image").digest())
    return td


def appraise(
    quote: bytes,
    authority: SimulationAuthority,
    anchor: TrustAnchor | None = None,
    at: datetime = AT,
    policy: Policy = ALLOW_SIM,
    collateral: bytes | None = None,
) -> Appraisal:
    anchor = anchor or TrustAnchor(authority.root_cert, simulated=True)
    bundle = load_bundle(collateral if collateral is not None else bundle_json(authority, AT))
    return appraise_quote(parse_quote(quote), bundle, anchor, at, policy)


def codes(appraisal: Appraisal) -> list[str]:
    return [error.code for error in appraisal.errors]


def test_quote_has_the_v4_layout_and_the_td_registers(td: SimulatedTd) -> None:
    raw = td.quote(b"short")
    quote = parse_quote(raw)
    assert quote.size == len(raw)
    assert len(quote.signed) == HEADER_SIZE + TD10_BODY_SIZE
    assert (quote.header.version, quote.header.attestation_key_type, quote.header.tee_type) == (4, 2, 0x81)
    assert quote.header.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert quote.body.report_data == b"short" + bytes(59)
    assert quote.body.rtmrs == td.rtmrs
    assert not quote.body.debug
    assert quote.qe_report.report_data == (
        hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + bytes(32)
    )
    assert quote.pck_chain.count(b"-----BEGIN CERTIFICATE-----") == 3


def test_quote_is_verified_and_accepted_under_the_simulation_root(
    td: SimulatedTd, authority: SimulationAuthority
) -> None:
    result = appraise(td.quote(REPORT_DATA), authority)
    assert codes(result) == []
    assert result.verified and result.accepted
    assert result.simulated
    assert result.tcb_status == "UpToDate"
    assert all(check.ok for check in result.checks)
    expected = {
        "mrtd": MRTD.hex(),
        "mrconfigid": MRCONFIGID.hex(),
        "report_data": REPORT_DATA.hex(),
        **{f"rtmr{i}": td.rtmrs[i].hex() for i in range(4)},
    }
    assert {key: result.measurements[key] for key in expected} == expected
    assert result.measurements["rtmr0"] == bytes(48).hex()


def test_default_policy_refuses_simulated_evidence(td: SimulatedTd, authority: SimulationAuthority) -> None:
    result = appraise(td.quote(REPORT_DATA), authority, policy=Policy())
    assert result.verified
    assert not result.accepted
    assert [error.code for error in result.policy_errors] == ["policy.simulated_rejected"]


def test_intel_root_refuses_simulated_quotes(td: SimulatedTd, authority: SimulationAuthority) -> None:
    result = appraise(td.quote(REPORT_DATA), authority, anchor=intel_root())
    assert not result.verified and not result.accepted
    assert not result.simulated
    chain = next(check for check in result.checks if check.name == "pck.chain")
    assert not chain.ok
    assert codes(result)[0] in {"cert.untrusted_root", "cert.chain_invalid"}


def test_another_authoritys_root_refuses_the_quote(td: SimulatedTd) -> None:
    other = SimulationAuthority.generate(AT)
    result = appraise(td.quote(REPORT_DATA), other)
    assert not result.verified and not result.accepted
    assert codes(result)[0] == "cert.untrusted_root"


def test_extend_rtmr_folds_sha384_of_old_value_and_digest(authority: SimulationAuthority) -> None:
    td = SimulatedTd(authority)
    digests = [hashlib.sha384(bytes([i])).digest() for i in range(3)]
    expected = bytes(48)
    for digest in digests:
        expected = hashlib.sha384(expected + digest).digest()
        assert td.extend_rtmr(2, digest) == expected
    td.extend_rtmr_event(0, b"event")
    assert td.rtmrs == (
        hashlib.sha384(bytes(48) + hashlib.sha384(b"event").digest()).digest(),
        bytes(48),
        expected,
        bytes(48),
    )


@pytest.mark.parametrize(
    ("index", "digest"),
    [(4, bytes(48)), (-1, bytes(48)), (0, bytes(32)), (0, hashlib.sha384().digest() + b"x")],
)
def test_extend_rtmr_rejects_bad_index_or_digest(authority: SimulationAuthority, index: int, digest: bytes) -> None:
    td = SimulatedTd(authority)
    with pytest.raises(ValueError):
        td.extend_rtmr(index, digest)
    assert td.rtmrs == (bytes(48),) * 4


def test_td_rejects_wrong_sizes(authority: SimulationAuthority) -> None:
    with pytest.raises(ValueError, match="mrtd"):
        SimulatedTd(authority, mrtd=bytes(32))
    with pytest.raises(ValueError, match="report data"):
        SimulatedTd(authority).quote(bytes(65))


def test_tampered_body_breaks_the_quote_signature(td: SimulatedTd, authority: SimulationAuthority) -> None:
    raw = bytearray(td.quote(REPORT_DATA))
    raw[MRTD_OFFSET] ^= 0x01
    result = appraise(bytes(raw), authority)
    assert codes(result) == ["quote.signature_invalid"]
    assert result.measurements["mrtd"] != MRTD.hex()


def test_collateral_is_refused_after_its_next_update(td: SimulatedTd, authority: SimulationAuthority) -> None:
    collateral = bundle_json(authority, AT, AT + timedelta(days=1))
    quote = td.quote(REPORT_DATA)
    assert appraise(quote, authority, at=AT + timedelta(hours=23), collateral=collateral).verified
    late = appraise(quote, authority, at=AT + timedelta(days=1, seconds=1), collateral=collateral)
    assert codes(late) == ["collateral.expired", "collateral.expired"]  # TCB Info and QE Identity


def test_collateral_defaults_to_now_for_thirty_days(authority: SimulationAuthority) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    tcb_info = load_bundle(bundle_json(authority)).tcb_info_model
    assert before <= tcb_info.issue_date <= datetime.now(UTC)
    assert tcb_info.next_update - tcb_info.issue_date == timedelta(days=30)


def test_revoked_pck_certificate_is_refused(td: SimulatedTd, authority: SimulationAuthority) -> None:
    quote = td.quote(REPORT_DATA)
    next_update = AT + timedelta(days=30)
    unrelated = authority.reissue_crls(AT, next_update, [authority.pck_cert.serial_number + 1])
    assert appraise(quote, unrelated, collateral=bundle_json(unrelated, AT)).accepted
    revoked = authority.reissue_crls(AT, next_update, [authority.pck_cert.serial_number])
    assert codes(appraise(quote, revoked, collateral=bundle_json(revoked, AT))) == ["cert.revoked"]


def test_save_and_load_round_trip(tmp_path: Path, authority: SimulationAuthority) -> None:
    directory = tmp_path / "sim"
    authority.save(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()}
    assert {name for name, mode in modes.items() if mode == 0o600} == {n for n in modes if n.endswith(".key")}
    assert len(modes) == 11
    loaded = SimulationAuthority.load(directory)
    assert loaded.to_pem() == authority.to_pem()
    td = SimulatedTd(loaded, mrtd=MRTD)
    result = appraise(td.quote(REPORT_DATA), loaded, anchor=TrustAnchor(loaded.root_cert, simulated=True))
    assert result.accepted
    assert result.measurements["mrtd"] == MRTD.hex()


def test_from_pem_refuses_missing_files_and_mismatched_keys(authority: SimulationAuthority) -> None:
    files = authority.to_pem()
    with pytest.raises(EvidenceFormatError, match=r"pck\.key is missing"):
        SimulationAuthority.from_pem({k: v for k, v in files.items() if k != "pck.key"})
    other = SimulationAuthority.generate(AT).to_pem()
    with pytest.raises(EvidenceFormatError, match="does not match its certificate") as raised:
        SimulationAuthority.from_pem({**files, "pck.key": other["pck.key"]})
    assert raised.value.code == "input.unreadable"


@pytest.mark.parametrize(
    "ext",
    [
        PckExtensions(bytes(16), (0,) * 16, 0, bytes(16), bytes(2), bytes(6), 0),
        PckExtensions(
            bytes(range(16)),
            (127, 128, 255, 256, *range(12)),
            0xFFFF,
            b"\xff" * 16,
            b"\x01\x02",
            b"abcdef",
            1,
        ),
    ],
)
def test_sgx_extensions_round_trip(ext: PckExtensions) -> None:
    assert decode_sgx_extensions(encode_sgx_extensions(ext)) == ext


def test_pck_certificate_carries_the_simulated_platform(authority: SimulationAuthority) -> None:
    pck = parse_pck_extensions(authority.pck_cert)
    assert (pck.fmspc, pck.pce_id, pck.pcesvn, pck.cpusvn) == (
        platform.FMSPC,
        platform.PCE_ID,
        platform.PCESVN,
        platform.CPUSVN,
    )
    assert pck.sgx_tcb_components == platform.SGX_TCB_COMPONENTS


def test_dcap_qvl_agrees(td: SimulatedTd, authority: SimulationAuthority) -> None:
    """An independent verifier (dcap-qvl, Rust) accepts the bytes under the simulation root only."""
    dcap_qvl = pytest.importorskip("dcap_qvl")
    quote = td.quote(REPORT_DATA)
    collateral = dcap_qvl.QuoteCollateralV3.from_json(bundle_json(authority, AT).decode())
    now = int(AT.timestamp())
    report = dcap_qvl.verify_with_root_ca(quote, collateral, authority.root_cert.public_bytes(Encoding.DER), now)
    assert report.status == "UpToDate"
    with pytest.raises(ValueError):
        dcap_qvl.verify(quote, collateral, now)
