"""ExpectedMeasurements: the calculators' output becomes RAS reference values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from teeplane.baseline.measurements import ExpectedMeasurements, MeasuredEvent


def test_tdx_measurements_become_reference_values() -> None:
    expected = ExpectedMeasurements(
        tee="tdx",
        mrtd="AA" * 48,
        rtmrs={"rtmr1": "bb" * 48},
        events={"rtmr2": [MeasuredEvent(digest="cc" * 48, description="cmdline")]},
        mrconfigid="dd" * 48,
    )
    reference = expected.reference_values("baseline-1")
    assert reference.mrtd == ["aa" * 48] and reference.rtmr1 == ["bb" * 48] and reference.rtmr2 == []
    assert reference.rtmr_events == {"rtmr2": ["cc" * 48]}
    assert (reference.mrconfigid, reference.baseline_id) == (["dd" * 48], "baseline-1")


def test_snp_measurements_become_reference_values() -> None:
    reference = ExpectedMeasurements(tee="snp", snp_measurement="11" * 48, host_data="22" * 32).reference_values()
    assert (reference.measurement, reference.host_data, reference.baseline_id) == (["11" * 48], ["22" * 32], None)


def test_digests_must_have_the_register_size() -> None:
    with pytest.raises(ValidationError, match="48 bytes"):
        ExpectedMeasurements(tee="tdx", mrtd="aa" * 32)
    with pytest.raises(ValidationError, match="mrtd"):
        ExpectedMeasurements(tee="tdx").reference_values()
