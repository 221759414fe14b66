"""Baseline documents: the in-toto statement, its canonical form, its ID, and what parsing refuses."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from baseline_testing import NOW, document, measurements, metadata
from hypothesis import given, settings
from hypothesis import strategies as st

from teeplane.baseline.document import (
    DEFAULT_VALIDITY,
    LOCAL_BUILDER,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    BaselineMetadata,
    build_document,
    check_validity,
    parse_document,
)
from teeplane.baseline.errors import BaselineInputError, BaselineRefusedError, Code
from teeplane.baseline.measurements import Artifact, ExpectedMeasurements, MeasuredEvent

#: The ID of `document(0)`: it changes only if the document format does (which needs a new predicateType).
GOLDEN_ID = "sha256:10bd663e1d2c8332e1ff68556116a557e951587d9b46040f2a09b04429dfe8ab"


def payload_json() -> dict[str, Any]:
    data = json.loads(document().payload)
    assert isinstance(data, dict)
    return data


def test_the_statement_is_in_toto_with_the_baseline_predicate() -> None:
    data = payload_json()
    assert data["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert data["predicateType"] == PREDICATE_TYPE == "https://teeplane.io/baseline/v1"
    m = measurements()
    assert data["subject"] == [
        {"name": "firmware", "digest": {"sha384": "e0" * 48}},
        {"name": "kernel", "digest": {"sha256": "e1" * 32, "sha384": "e2" * 48}},
        {"name": "measurement/mrtd", "digest": {"sha384": m.mrtd}},
        {"name": "measurement/rtmr0", "digest": {"sha384": m.rtmrs["rtmr0"]}},
        {"name": "measurement/rtmr1", "digest": {"sha384": m.rtmrs["rtmr1"]}},
        {"name": "measurement/mrconfigid", "digest": {"sha384": m.mrconfigid}},
    ]
    predicate = data["predicate"]
    assert predicate["measurements"] == m.model_dump(mode="json", exclude_none=True)
    assert predicate["measurements"]["events"]["rtmr2"][0] == {"digest": "0000" + "c2" * 46, "description": "cmdline"}
    assert predicate["validity"] == {"notBefore": "2025-01-01T00:00:00Z", "notAfter": "2030-01-01T00:00:00Z"}
    assert predicate["builder"]["id"].startswith("https://github.com/")
    assert predicate["source"] == {
        "uri": "git+https://github.com/teeplane/payments",
        "digest": {"gitCommit": "ab" * 20},
    }
    assert predicate["vmm"] == {"type": "qemu", "version": "9.1.0", "machine": "q35", "vcpus": 2, "memory_mib": 2048}
    assert (predicate["name"], predicate["version"]) == ("payments", "1.2.3")


def test_the_canonical_form_and_the_id_are_stable() -> None:
    built = document()
    assert built.payload == rfc8785.dumps(json.loads(built.payload))
    assert built.id == "sha256:" + hashlib.sha256(built.payload).hexdigest() == GOLDEN_ID
    # the same content given in another order, with uppercase hex, is the same document
    m = measurements().model_dump()
    m["rtmrs"] = dict(reversed(m["rtmrs"].items()))
    m["mrtd"] = m["mrtd"].upper()
    reordered = build_document(ExpectedMeasurements.model_validate(m), metadata())
    assert (reordered.payload, reordered.id) == (built.payload, built.id)
    assert parse_document(built.payload) == built


def test_unset_fields_are_left_out_and_defaults_filled_in() -> None:
    built = build_document(ExpectedMeasurements(tee="snp", snp_measurement="11" * 48), now=NOW)
    data = json.loads(built.payload)
    assert data["subject"] == [{"name": "measurement/snp_measurement", "digest": {"sha384": "11" * 48}}]
    assert data["predicate"]["builder"] == {"id": LOCAL_BUILDER}
    assert "source" not in data["predicate"] and "name" not in data["predicate"]
    assert "mrtd" not in data["predicate"]["measurements"]
    validity = built.statement.predicate.validity
    assert (validity.not_before, validity.not_after - validity.not_before) == (NOW, DEFAULT_VALIDITY)


_hex48 = st.binary(min_size=48, max_size=48).map(bytes.hex)


@st.composite
def expected_measurements(draw: st.DrawFn) -> ExpectedMeasurements:
    names = draw(st.lists(st.sampled_from(["rtmr0", "rtmr1", "rtmr2", "rtmr3"]), unique=True))
    return ExpectedMeasurements(
        tee="tdx",
        mrtd=draw(_hex48),
        rtmrs={name: draw(_hex48) for name in names},
        events={
            name: [MeasuredEvent(digest=d, description=draw(st.text(max_size=20))) for d in draw(st.lists(_hex48))]
            for name in names
        },
        artifacts=[
            Artifact(name=f"artifact-{i}", digest={"sha256": d})
            for i, d in enumerate(draw(st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=3)))
        ],
    )


@settings(max_examples=50, deadline=None)
@given(expected_measurements(), _hex48)
def test_parsing_gives_back_the_document_and_every_register_is_in_the_id(m: ExpectedMeasurements, other: str) -> None:
    built = build_document(m, metadata())
    assert parse_document(built.payload) == built
    changed = build_document(m.model_copy(update={"mrtd": other}), metadata())
    assert (changed.id == built.id) == (other == m.mrtd)


def _edited(change: Any) -> bytes:
    data = payload_json()
    change(data)
    return rfc8785.dumps(data)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"{not json", Code.BASELINE_MALFORMED),
        (b"[]", Code.BASELINE_STATEMENT_TYPE),
        (_edited(lambda d: d.update(_type="https://in-toto.io/Statement/v0.1")), Code.BASELINE_STATEMENT_TYPE),
        (_edited(lambda d: d.update(predicateType="https://slsa.dev/provenance/v1")), Code.BASELINE_PREDICATE_TYPE),
        (_edited(lambda d: d["predicate"].update(extra=1)), Code.BASELINE_MALFORMED),
        (_edited(lambda d: d["predicate"]["measurements"].pop("mrtd")), Code.BASELINE_MALFORMED),
        (_edited(lambda d: d["predicate"]["measurements"].update(mrtd="ff" * 48)), Code.BASELINE_SUBJECT_MISMATCH),
        (_edited(lambda d: d["subject"].pop()), Code.BASELINE_SUBJECT_MISMATCH),
        (_edited(lambda d: d["predicate"]["measurements"]["events"]["rtmr2"][1].pop("description")),
         Code.BASELINE_NOT_CANONICAL),
        (_edited(lambda d: d["predicate"]["validity"].update(notBefore="2025-01-01T00:00:00+00:00")),
         Code.BASELINE_NOT_CANONICAL),
        (_edited(lambda d: d["predicate"]["validity"].update(notBefore="2025-01-01T00:00:00.5Z")),
         Code.BASELINE_NOT_CANONICAL),
        (_edited(lambda d: d["predicate"]["measurements"]["events"]["rtmr2"][1].update(digest="C3" * 48)),
         Code.BASELINE_NOT_CANONICAL),
        (json.dumps(payload_json(), indent=1).encode(), Code.BASELINE_NOT_CANONICAL),
    ],
)  # fmt: skip
def test_parsing_refuses_anything_but_a_canonical_baseline(payload: bytes, code: Code) -> None:
    with pytest.raises((BaselineInputError, BaselineRefusedError)) as caught:
        parse_document(payload)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("m", "reason"),
    [
        (ExpectedMeasurements(tee="tdx", rtmrs={"rtmr1": "aa" * 48}), "mrtd"),
        (ExpectedMeasurements(tee="snp", mrtd="aa" * 48, snp_measurement="bb" * 48), "cannot be checked"),
        (measurements().model_copy(update={"artifacts": [Artifact(name="measurement/x", digest={"a": "b"})]}),
         "reserved"),
        (measurements().model_copy(update={"artifacts": measurements().artifacts * 2}), "same name"),
    ],
)  # fmt: skip
def test_building_refuses_measurements_that_make_no_baseline(m: ExpectedMeasurements, reason: str) -> None:
    with pytest.raises(BaselineInputError, match=reason) as caught:
        build_document(m, metadata())
    assert caught.value.code == Code.BASELINE_MALFORMED


def test_the_validity_window() -> None:
    statement = document().statement
    check_validity(statement, NOW)
    check_validity(statement, datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(BaselineRefusedError) as caught:
        check_validity(statement, datetime(2025, 1, 1, tzinfo=UTC) - timedelta(seconds=1))
    assert caught.value.code == Code.BASELINE_NOT_YET_VALID
    with pytest.raises(BaselineRefusedError) as caught:
        check_validity(statement, datetime(2030, 1, 1, tzinfo=UTC))
    assert caught.value.code == Code.BASELINE_EXPIRED
    with pytest.raises(ValueError, match="notAfter must be after notBefore"):
        BaselineMetadata.model_validate(
            {"validity": {"notBefore": "2025-01-02T00:00:00Z", "notAfter": "2025-01-01T00:00:00Z"}}
        )
    with pytest.raises(ValueError, match="UTC offset"):
        BaselineMetadata.model_validate(
            {"validity": {"notBefore": "2025-01-01T00:00:00", "notAfter": "2026-01-01T00:00:00Z"}}
        )
