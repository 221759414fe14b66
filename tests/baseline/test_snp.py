"""SEV-SNP baselines: the launch digest through sev-snp-measure, HOST_DATA from initdata."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from teeplane.baseline.build import measure_recipe
from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import Firmware, Kernel, initdata
from teeplane.baseline.measure.snp import snp_launch_digest
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.recipe import load_recipe


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    (tmp_path / "OVMF.fd").write_bytes(Firmware().build())
    (tmp_path / "bzImage").write_bytes(Kernel().build())
    (tmp_path / "initrd.img").write_bytes(b"initrd")
    (tmp_path / "initdata.toml").write_bytes(initdata())
    return tmp_path


def measured(directory: Path, **overrides: Any) -> ExpectedMeasurements:
    data: dict[str, Any] = {
        "tee": "snp",
        "firmware": {"source": "OVMF.fd"},
        "kernel": {"source": "bzImage"},
        "initrd": {"source": "initrd.img"},
        "cmdline": "console=ttyS0",
        "initdata": {"source": "initdata.toml"},
        "snp": {"vcpus": 2, "vcpu_type": "EPYC-v4"},
    }
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(data | overrides))
    return measure_recipe(load_recipe(path))


def test_a_snp_recipe_gives_the_launch_digest_and_host_data(build_dir: Path) -> None:
    expected = measured(build_dir)
    assert expected.tee == "snp" and expected.snp_measurement is not None and len(expected.snp_measurement) == 96
    assert expected.host_data == hashlib.sha384(initdata()).digest()[:32].hex()
    assert measured(build_dir).snp_measurement == expected.snp_measurement
    reference = expected.reference_values("b")
    assert (reference.measurement, reference.host_data) == ([expected.snp_measurement], [expected.host_data])
    assert [a.name for a in expected.artifacts] == ["firmware", "kernel", "initrd", "cmdline", "initdata"]


@pytest.mark.parametrize(
    "change",
    [
        {"cmdline": "console=ttyS1"},
        {"snp": {"vcpus": 4, "vcpu_type": "EPYC-v4"}},
        {"snp": {"vcpus": 2, "vcpu_type": "EPYC-Milan"}},
        {"snp": {"vcpus": 2, "vcpu_type": "EPYC-v4", "guest_features": 0x21}},
        {"kernel": None, "initrd": None},
    ],
)
def test_every_input_changes_the_launch_digest(build_dir: Path, change: dict[str, Any]) -> None:
    assert measured(build_dir, **change).snp_measurement != measured(build_dir).snp_measurement


def test_without_initdata_there_is_no_host_data(build_dir: Path) -> None:
    assert measured(build_dir, initdata=None).host_data is None


def test_firmware_sev_snp_measure_cannot_read_is_a_typed_error() -> None:
    without_sev = Firmware(sev=False).build()
    with pytest.raises(BuildInputError, match="sev-snp-measure refused") as caught:
        snp_launch_digest(without_sev, vcpus=1, vcpu_type="EPYC-v4", guest_features=1, kernel=b"k")
    assert caught.value.code == "snp_measure.failed"
    with pytest.raises(BuildInputError, match="unknown vCPU type 'Pentium'"):
        snp_launch_digest(Firmware().build(), vcpus=1, vcpu_type="Pentium", guest_features=1)
