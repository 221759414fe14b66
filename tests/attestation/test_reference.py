"""Reference values and appraisal policy: validation, JSON, and comparison against appraised evidence."""

from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.errors import AppraisalError, Code
from teeplane.attestation.eventlog import EV_NO_ACTION, TPM_ALG_SHA384, Event, EventLog, parse_event_log
from teeplane.attestation.reference import (
    CHECK_REFERENCE,
    AppraisalPolicy,
    Masked,
    ReferenceValues,
    compare_reference,
    record_reference,
)
from teeplane.attestation.tdx.quote import parse_quote

TPM_ALG_SHA256 = 0x000B
EV_IPL = 0x0000000D
TDX_LIST_CLAIMS = ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid"]


def reg(byte: int) -> str:
    """A 48-byte register value as hex, every byte `byte`."""
    return f"{byte:02x}" * 48


def tdx_measurements(**overrides: str) -> dict[str, str]:
    measurements = {claim: reg(n + 1) for n, claim in enumerate(TDX_LIST_CLAIMS)}
    measurements |= {"td_attributes": "0000001000000000", "xfam": "e702060000000000", "report_data": "00" * 64}
    return measurements | overrides


def tdx_appraisal(**overrides: str) -> Appraisal:
    return Appraisal(tee="tdx", measurements=tdx_measurements(**overrides))


def tdx_reference(**fields: Any) -> ReferenceValues:
    """A TDX reference accepting exactly what `tdx_appraisal()` reports, with `fields` replaced."""
    measurements = tdx_measurements()
    values: dict[str, Any] = {claim: [measurements[claim]] for claim in TDX_LIST_CLAIMS}
    values |= {"td_attributes": measurements["td_attributes"], "xfam": measurements["xfam"]}
    return ReferenceValues.model_validate({"tee": "tdx", **values, **fields})


def only_error(errors: list[AppraisalError]) -> AppraisalError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def replay(digests: list[bytes]) -> str:
    register = bytes(48)
    for digest in digests:
        register = sha384(register + digest)
    return register.hex()


def event(index: int, digest: bytes | None, event_type: int = EV_IPL) -> Event:
    digests = {TPM_ALG_SHA384: digest} if digest is not None else {TPM_ALG_SHA256: bytes(32)}
    return Event(index, event_type, digests, b"", 0)


# -- models -----------------------------------------------------------------------------------------


def test_hex_is_lowercased() -> None:
    reference = ReferenceValues(tee="tdx", mrtd=["AB" * 48], td_attributes="00000010000000FF")
    assert reference.mrtd == ["ab" * 48]
    assert reference.td_attributes == "00000010000000ff"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mrtd": ["zz" * 48]}, "expected a hex string"),
        ({"mrtd": ["ab" * 47]}, "expected 48 bytes (96 hex characters), got 94 characters"),
        ({"mrtd": [reg(0)], "rtmr2": ["ab" * 49]}, "expected 48 bytes"),
        ({"mrtd": [reg(0) + "\n"]}, "expected a hex string"),
        ({"mrtd": [reg(0)], "td_attributes": "00"}, "expected 8 bytes (16 hex characters)"),
        ({"mrtd": [reg(0)], "rtmr_events": {"rtmr4": []}}, "rtmr_events.rtmr4"),
        ({"mrtd": [reg(0)], "rtmr_events": {"rtmr1": ["00"]}}, "expected 48 bytes"),
        ({"mrtd": [reg(0)], "mrtd_typo": [reg(0)]}, "Extra inputs are not permitted"),
        ({"mrtd": reg(0)}, "Input should be a valid list"),
        ({}, "a tdx reference must accept at least one mrtd"),
        ({"rtmr0": [reg(0)], "mrconfigid": [reg(0)]}, "a tdx reference must accept at least one mrtd"),
        ({"mrtd": [reg(0)], "measurement": [reg(0)]}, "measurement cannot be checked on tdx evidence"),
    ],
)
def test_invalid_tdx_reference_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ReferenceValues.model_validate({"tee": "tdx", **fields})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host_data": ["00" * 32]}, "a snp reference must accept at least one measurement"),
        ({"measurement": [reg(0)], "host_data": ["00" * 48]}, "expected 32 bytes"),
        ({"measurement": [reg(0)], "mrtd": [reg(0)], "xfam": "00" * 8}, "mrtd, xfam cannot be checked on snp"),
        ({"measurement": [reg(0)], "rtmr_events": {"rtmr0": []}}, "rtmr_events cannot be checked on snp"),
    ],
)
def test_invalid_snp_reference_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReferenceValues.model_validate({"tee": "snp", **fields})


def test_unknown_tee_is_refused() -> None:
    with pytest.raises(ValidationError, match="Input should be 'tdx' or 'snp'"):
        ReferenceValues.model_validate({"tee": "sev", "measurement": [reg(0)]})


@pytest.mark.parametrize(
    ("value", "mask", "message"),
    [
        ("00" * 8, "00" * 8, "the mask is zero"),
        ("0000001000000001", "00000010000000fe", "bits set outside the mask"),
    ],
)
def test_masks_that_cannot_work_are_refused(value: str, mask: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Masked(value=value, mask=mask)


def test_reference_json_round_trip() -> None:
    document = {
        "tee": "tdx",
        "baseline_id": "sha256:1234",
        "mrtd": [reg(1), reg(2)],
        "rtmr0": [reg(3)],
        "rtmr1": [],
        "rtmr2": [],
        "rtmr3": [],
        "rtmr_events": {"rtmr1": [reg(4), reg(5)], "rtmr2": []},
        "mrconfigid": [reg(6)],
        "td_attributes": {"value": "0000001000000000", "mask": "ffffffff000000ff"},
        "xfam": "e702060000000000",
        "measurement": [],
        "host_data": [],
    }
    reference = ReferenceValues.model_validate_json(json.dumps(document))
    assert json.loads(reference.model_dump_json()) == document
    assert ReferenceValues.model_validate_json(reference.model_dump_json()) == reference
    assert reference.td_attributes == Masked(value="0000001000000000", mask="ffffffff000000ff")


def test_snp_reference_json_round_trip() -> None:
    reference = ReferenceValues(tee="snp", measurement=[reg(7)], host_data=["ab" * 32])
    assert ReferenceValues.model_validate_json(reference.model_dump_json()) == reference


def test_policy_defaults_and_conversion() -> None:
    policy = AppraisalPolicy()
    assert policy.model_dump() == {
        "accepted_tcb_statuses": ["UpToDate"],
        "allow_debug": False,
        "allow_simulated": False,
        "token_lifetime_seconds": 300,
    }
    assert policy.to_policy() == Policy()
    relaxed = AppraisalPolicy.model_validate_json(
        '{"accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"], "allow_debug": true,'
        ' "allow_simulated": true, "token_lifetime_seconds": 600}'
    )
    assert relaxed.to_policy() == Policy(frozenset({"UpToDate", "SWHardeningNeeded"}), True, True)
    assert AppraisalPolicy.model_validate_json(relaxed.model_dump_json()) == relaxed


def test_policy_refuses_what_it_converts() -> None:
    appraisal = Appraisal(tee="tdx", tcb_status="OutOfDate", debug=True, simulated=True)
    appraisal.apply_policy(AppraisalPolicy(accepted_tcb_statuses=["OutOfDate"]).to_policy())
    assert [e.code for e in appraisal.policy_errors] == [Code.POLICY_DEBUG, Code.POLICY_SIMULATED]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"accepted_tcb_statuses": ["Revoked"]}, "accepted_tcb_statuses.0"),
        ({"accepted_tcb_statuses": ["uptodate"]}, "Input should be 'UpToDate'"),
        ({"accepted_tcb_statuses": []}, "at least 1 item"),
        ({"token_lifetime_seconds": 9}, "greater than or equal to 10"),
        ({"token_lifetime_seconds": 601}, "less than or equal to 600"),
        ({"allow_debug": "yes"}, "Input should be a valid boolean"),
        ({"token_lifetime": 60}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_policy_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AppraisalPolicy.model_validate(fields)


# -- comparison -------------------------------------------------------------------------------------


def test_matching_tdx_evidence_passes() -> None:
    appraisal = tdx_appraisal()
    reference = tdx_reference(baseline_id="bl-1")
    assert compare_reference(appraisal, reference) == []
    record_reference(appraisal, reference)
    check = appraisal.checks[-1]
    assert (check.name, check.ok) == (CHECK_REFERENCE, True)
    assert check.detail == "MRTD, RTMR0, RTMR1, RTMR2, RTMR3, MRCONFIGID, TD_ATTRIBUTES, XFAM match (baseline bl-1)"
    assert appraisal.accepted


@pytest.mark.parametrize("claim", TDX_LIST_CLAIMS)
def test_each_register_mismatch_names_path_expected_and_observed(claim: str) -> None:
    error = only_error(compare_reference(tdx_appraisal(**{claim: reg(0xEE)}), tdx_reference()))
    assert error.code == Code.POLICY_MEASUREMENT_MISMATCH
    assert error.where == f"measurements.{claim}"
    assert error.message == f"{claim.upper()}: expected {tdx_measurements()[claim]}, observed {reg(0xEE)}"


@pytest.mark.parametrize("claim", TDX_LIST_CLAIMS[1:])
def test_an_empty_list_leaves_a_register_unconstrained(claim: str) -> None:
    assert compare_reference(tdx_appraisal(**{claim: reg(0xEE)}), tdx_reference(**{claim: []})) == []


def test_any_of_several_accepted_values_matches() -> None:
    rtmr2 = tdx_measurements()["rtmr2"]
    reference = tdx_reference(rtmr2=[reg(0xA0), reg(0xA1), rtmr2])
    assert compare_reference(tdx_appraisal(), reference) == []
    error = only_error(compare_reference(tdx_appraisal(rtmr2=reg(0xA2)), reference))
    assert error.message == f"RTMR2: expected one of {reg(0xA0)}, {reg(0xA1)}, {rtmr2}, observed {reg(0xA2)}"


def test_every_mismatch_is_reported() -> None:
    errors = compare_reference(tdx_appraisal(mrtd=reg(0xE0), mrconfigid=reg(0xE1), xfam="00" * 8), tdx_reference())
    assert [e.where for e in errors] == ["measurements.mrtd", "measurements.mrconfigid", "measurements.xfam"]


def test_a_claim_the_evidence_lacks_is_a_mismatch() -> None:
    appraisal = tdx_appraisal()
    del appraisal.measurements["mrconfigid"]
    del appraisal.measurements["xfam"]
    errors = compare_reference(appraisal, tdx_reference())
    assert [e.message for e in errors] == [
        f"MRCONFIGID: expected {reg(6)}, observed (none)",
        "XFAM: expected e702060000000000 under mask ffffffffffffffff, observed (none)",
    ]


@pytest.mark.parametrize("claim", ["td_attributes", "xfam"])
def test_exact_attributes_mismatch(claim: str) -> None:
    error = only_error(compare_reference(tdx_appraisal(**{claim: "0100000000000000"}), tdx_reference()))
    assert error.where == f"measurements.{claim}"
    expected = tdx_measurements()[claim]
    assert error.message == f"{claim.upper()}: expected {expected} under mask {'ff' * 8}, observed 0100000000000000"


def test_masked_attributes_ignore_bits_outside_the_mask() -> None:
    # Quote byte order: DEBUG (byte 0, bit 0) and byte 3's high nibble (SEPT_VE_DISABLE, bit 28) are pinned.
    reference = tdx_reference(td_attributes={"value": "0000001000000000", "mask": "010000f000000000"})
    assert compare_reference(tdx_appraisal(td_attributes="0000001f00000040"), reference) == []
    error = only_error(compare_reference(tdx_appraisal(td_attributes="0100001000000000"), reference))
    assert error.where == "measurements.td_attributes"
    assert error.message == (
        "TD_ATTRIBUTES: expected 0000001000000000 under mask 010000f000000000, observed 0100001000000000"
    )


def test_masked_attribute_with_unreadable_observation_is_a_mismatch() -> None:
    reference = tdx_reference(xfam={"value": "e700000000000000", "mask": "ff00000000000000"})
    assert only_error(compare_reference(tdx_appraisal(xfam="e7"), reference)).where == "measurements.xfam"
    assert only_error(compare_reference(tdx_appraisal(xfam="zz" * 8), reference)).where == "measurements.xfam"


def test_tee_mismatch_is_the_only_error() -> None:
    reference = ReferenceValues(tee="snp", measurement=[reg(9)])
    error = only_error(compare_reference(tdx_appraisal(), reference))
    assert (error.code, error.where) == (Code.POLICY_TEE_MISMATCH, "tee")
    assert error.message == "the reference is for snp, the evidence comes from tdx"


def test_snp_measurement_and_host_data() -> None:
    appraisal = Appraisal(tee="snp", measurements={"measurement": reg(9), "host_data": "cd" * 32})
    reference = ReferenceValues(tee="snp", measurement=[reg(8), reg(9)], host_data=["cd" * 32])
    assert compare_reference(appraisal, reference) == []
    appraisal.measurements |= {"measurement": reg(7), "host_data": "ce" * 32}
    errors = compare_reference(appraisal, reference)
    assert [(e.code, e.where) for e in errors] == [
        (Code.POLICY_MEASUREMENT_MISMATCH, "measurements.measurement"),
        (Code.POLICY_MEASUREMENT_MISMATCH, "measurements.host_data"),
    ]
    assert errors[1].message == f"HOST_DATA: expected {'cd' * 32}, observed {'ce' * 32}"


def test_record_reference_refuses_once_per_error() -> None:
    appraisal = tdx_appraisal(rtmr1=reg(0xE0), rtmr3=reg(0xE1))
    record_reference(appraisal, tdx_reference())
    assert [(c.name, c.ok) for c in appraisal.checks] == [(CHECK_REFERENCE, False)] * 2
    assert [e.where for e in appraisal.policy_errors] == ["measurements.rtmr1", "measurements.rtmr3"]
    assert appraisal.verified
    assert not appraisal.accepted
    assert appraisal.checks[0].detail == str(appraisal.policy_errors[0])


# -- RTMR events ------------------------------------------------------------------------------------

DIGESTS = [sha384(b"kernel"), sha384(b"initrd"), sha384(b"cmdline")]


def rtmr1_log(digests: Sequence[bytes | None]) -> EventLog:
    """A log extending RTMR1 (index 2) with `digests`, around unrelated and EV_NO_ACTION events."""
    events = [event(1, sha384(b"firmware")), event(2, sha384(b"not extended"), EV_NO_ACTION)]
    events += [event(2, digest) for digest in digests]
    events += [event(0, sha384(b"mrtd")), event(3, sha384(b"rtmr2"))]
    return EventLog(tuple(events), {TPM_ALG_SHA384: 48, TPM_ALG_SHA256: 32})


def rtmr1_case(digests: Sequence[bytes | None], expected: list[bytes]) -> list[AppraisalError]:
    known = [d for d in digests if d is not None]
    appraisal = tdx_appraisal(rtmr1=replay(known))
    reference = tdx_reference(rtmr1=[], rtmr_events={"rtmr1": [d.hex() for d in expected]})
    return compare_reference(appraisal, reference, rtmr1_log(digests))


def test_rtmr_events_match_in_order_skipping_no_action_events() -> None:
    assert rtmr1_case(DIGESTS, DIGESTS) == []


def test_record_reference_names_the_pinned_events() -> None:
    appraisal = tdx_appraisal(rtmr1=replay(DIGESTS))
    reference = tdx_reference(rtmr1=[], rtmr_events={"rtmr1": [d.hex() for d in DIGESTS]})
    record_reference(appraisal, reference, rtmr1_log(DIGESTS))
    assert (
        appraisal.checks[-1].detail == "MRTD, RTMR0, RTMR2, RTMR3, MRCONFIGID, TD_ATTRIBUTES, XFAM, RTMR1 events match"
    )


def test_a_substituted_event_is_named_by_position() -> None:
    other = sha384(b"another initrd")
    error = only_error(rtmr1_case([DIGESTS[0], other, DIGESTS[2]], DIGESTS))
    assert (error.code, error.where) == (Code.POLICY_MEASUREMENT_MISMATCH, "eventlog.rtmr1[1]")
    assert error.message == f"RTMR1 event 1: expected {DIGESTS[1].hex()}, observed {other.hex()}"


def test_an_extra_event_is_a_mismatch() -> None:
    extra = sha384(b"extra")
    error = only_error(rtmr1_case([*DIGESTS, extra], DIGESTS))
    assert error.where == "eventlog.rtmr1[3]"
    assert error.message == f"RTMR1 event 3: expected (none), observed {extra.hex()}"


def test_a_missing_event_is_a_mismatch() -> None:
    error = only_error(rtmr1_case(DIGESTS[:2], DIGESTS))
    assert error.message == f"RTMR1 event 2: expected {DIGESTS[2].hex()}, observed (none)"


def test_an_event_without_a_sha384_digest_matches_nothing() -> None:
    errors = rtmr1_case([DIGESTS[0], None, DIGESTS[2], None], DIGESTS)
    assert [(e.where, e.message.split(", ")[-1]) for e in errors] == [
        ("eventlog.rtmr1[1]", "observed (no SHA-384 digest)"),
        ("eventlog.rtmr1[3]", "observed (no SHA-384 digest)"),
    ]


def test_an_empty_event_list_pins_an_unextended_rtmr() -> None:
    reference = tdx_reference(rtmr3=[], rtmr_events={"rtmr3": []})
    assert compare_reference(tdx_appraisal(rtmr3=reg(0)), reference, rtmr1_log(DIGESTS)) == []


def test_missing_event_log_is_refused_with_its_own_code() -> None:
    reference = tdx_reference(rtmr_events={"rtmr2": [], "rtmr1": [DIGESTS[0].hex()]})
    error = only_error(compare_reference(tdx_appraisal(), reference))
    assert (error.code, error.where) == (Code.POLICY_EVENTLOG_MISSING, "eventlog")
    assert error.message == "the reference pins the events of RTMR1, RTMR2, but no event log was given"


def test_a_log_that_does_not_replay_to_the_quote_is_refused() -> None:
    appraisal = tdx_appraisal(rtmr1=reg(0x11))
    reference = tdx_reference(rtmr1=[], rtmr_events={"rtmr1": [d.hex() for d in DIGESTS]})
    error = only_error(compare_reference(appraisal, reference, rtmr1_log(DIGESTS)))
    assert (error.code, error.where) == (Code.EVENTLOG_RTMR_MISMATCH, "eventlog.rtmr1")
    assert error.message == f"RTMR1: the event log replays to {replay(DIGESTS)}, the evidence has {reg(0x11)}"


def _log_bytes(records: list[tuple[int, int, bytes]]) -> bytes:
    """A crypto-agile log with SHA-384 only: the Spec ID header, then (index, type, digest) records."""
    spec = b"Spec ID Event03\x00" + struct.pack("<IBBBB", 0, 0, 2, 0, 2)
    spec += struct.pack("<IHH", 1, TPM_ALG_SHA384, 48) + b"\x00"
    header = struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec
    body = b"".join(
        struct.pack("<IIIH", index, event_type, 1, TPM_ALG_SHA384) + digest + struct.pack("<I", 0)
        for index, event_type, digest in records
    )
    return header + body


def test_rtmr_events_against_a_parsed_log() -> None:
    data = _log_bytes([(3, EV_IPL, DIGESTS[0]), (3, EV_NO_ACTION, bytes(48)), (3, EV_IPL, DIGESTS[1])])
    log = parse_event_log(data + b"\xff" * 16)
    appraisal = tdx_appraisal(rtmr2=replay(DIGESTS[:2]))
    reference = tdx_reference(rtmr2=[], rtmr_events={"rtmr2": [DIGESTS[0].hex(), DIGESTS[1].hex()]})
    assert compare_reference(appraisal, reference, log) == []
    reversed_reference = tdx_reference(rtmr2=[], rtmr_events={"rtmr2": [DIGESTS[1].hex(), DIGESTS[0].hex()]})
    errors = compare_reference(appraisal, reversed_reference, log)
    assert [e.where for e in errors] == ["eventlog.rtmr2[0]", "eventlog.rtmr2[1]"]


# -- genuine evidence -------------------------------------------------------------------------------


def test_reference_from_a_genuine_quote(corpus: Path) -> None:
    measurements = parse_quote((corpus / "tdx/dcap-qvl/tdx_quote").read_bytes()).body.measurements()
    appraisal = Appraisal(tee="tdx", measurements=measurements)
    reference = ReferenceValues.model_validate(
        {
            "tee": "tdx",
            "mrtd": [measurements["mrtd"].upper()],
            **{f"rtmr{n}": [measurements[f"rtmr{n}"]] for n in range(4)},
            "mrconfigid": [measurements["mrconfigid"]],
            "td_attributes": {"value": "0000001000000000", "mask": "ffffffff00000000"},
            "xfam": measurements["xfam"],
        }
    )
    assert compare_reference(appraisal, reference) == []
    tampered = ReferenceValues.model_validate(reference.model_dump() | {"rtmr2": [reg(0)]})
    error = only_error(compare_reference(appraisal, tampered))
    assert error.message == f"RTMR2: expected {reg(0)}, observed {measurements['rtmr2']}"
