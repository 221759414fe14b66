"""Property-based fuzzing of the TDX quote and collateral parsers: only typed errors, ever."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teeplane.attestation.tdx.appraise import appraise_quote
from teeplane.attestation.tdx.collateral import load_bundle, parse_pcs_response
from teeplane.attestation.tdx.quote import parse_quote
from teeplane.attestation.trust import intel_root
from teeplane.errors import TeeplaneError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
AT = datetime(2025, 6, 25, tzinfo=UTC)


def _parse_or_typed_error(data: bytes) -> None:
    try:
        parse_quote(data)
    except TeeplaneError as error:
        assert error.code.startswith("quote.")


@FUZZ
@given(st.binary(max_size=6000))
def test_random_bytes(data: bytes) -> None:
    _parse_or_typed_error(data)


@FUZZ
@given(
    version=st.sampled_from([4, 5]),
    body_type=st.integers(0, 5),
    body_size=st.integers(0, 2000),
    tail=st.binary(max_size=3000),
)
def test_plausible_headers(version: int, body_type: int, body_size: int, tail: bytes) -> None:
    header = version.to_bytes(2, "little") + (2).to_bytes(2, "little") + (0x81).to_bytes(4, "little") + bytes(40)
    middle = body_type.to_bytes(2, "little") + body_size.to_bytes(4, "little") if version == 5 else b""
    _parse_or_typed_error(header + middle + tail)


@pytest.fixture(scope="module")
def genuine(corpus: Path) -> bytes:
    return (corpus / "tdx/dcap-qvl/tdx_quote").read_bytes()


@FUZZ
@given(data=st.data())
def test_mutated_genuine_quote_parses_or_fails_typed_and_appraises(genuine: bytes, data: st.DataObject) -> None:
    mutated = bytearray(genuine)
    for _ in range(data.draw(st.integers(1, 8))):
        offset = data.draw(st.integers(0, len(mutated) - 1))
        mutated[offset] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    candidate = bytes(mutated[:cut]) if data.draw(st.booleans()) else bytes(mutated)
    try:
        quote = parse_quote(candidate)
    except TeeplaneError:
        return
    result = appraise_quote(quote, None, intel_root(), AT)  # appraisal records, never raises
    assert not result.verified


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_collateral_bundle(data: bytes) -> None:
    try:
        collateral = load_bundle(data)
        collateral.tcb_info_model  # noqa: B018 - validation is the point
        collateral.qe_identity_model  # noqa: B018
    except TeeplaneError as error:
        assert error.code.startswith("collateral.")


@FUZZ
@given(
    key=st.sampled_from(["tcbInfo", "enclaveIdentity"]),
    inner=json_values,
    signature=st.text(max_size=140),
)
def test_pcs_response(key: str, inner: object, signature: str) -> None:
    data = json.dumps({key: inner, "signature": signature}).encode()
    try:
        parse_pcs_response(data, key)
    except TeeplaneError as error:
        assert error.code.startswith("collateral.")


@FUZZ
@given(data=st.data())
def test_mutated_genuine_tcb_info(corpus: Path, data: st.DataObject) -> None:
    bundle = json.loads((corpus / "tdx/dcap-qvl/tdx_quote_collateral.json").read_text())
    text = bytearray(bundle["tcb_info"].encode())
    for _ in range(data.draw(st.integers(1, 4))):
        text[data.draw(st.integers(0, len(text) - 1))] = data.draw(st.integers(32, 126))
    bundle["tcb_info"] = text.decode()
    try:
        load_bundle(json.dumps(bundle).encode()).tcb_info_model  # noqa: B018
    except TeeplaneError as error:
        assert error.code == "collateral.malformed"
