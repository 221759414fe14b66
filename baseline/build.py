"""Build a baseline's expected measurements from a recipe: read the artifacts, run the calculators."""

from __future__ import annotations

from teeplane.attestation.reference import RtmrName
from teeplane.baseline.measure.initdata import HOST_DATA_SIZE, fit, initdata_digest
from teeplane.baseline.measure.snp import snp_launch_digest
from teeplane.baseline.measure.tdx import TdxBoot, boot_tdx
from teeplane.baseline.measurements import Artifact, ExpectedMeasurements, MeasuredEvent
from teeplane.baseline.recipe import Recipe
from teeplane.baseline.resolve import resolve_snp, resolve_tdx

_RTMRS: tuple[RtmrName, ...] = ("rtmr0", "rtmr1", "rtmr2", "rtmr3")


def measure_recipe(recipe: Recipe) -> ExpectedMeasurements:
    """What a TEE booted from `recipe`'s artifacts measures, with the artifacts as subjects."""
    if recipe.tee == "snp":
        return _measure_snp(recipe)
    artifacts, subjects = resolve_tdx(recipe)
    return tdx_measurements(boot_tdx(artifacts), subjects, golden_rtmr0=bool(artifacts.rtmr0))


def tdx_measurements(boot: TdxBoot, subjects: list[Artifact], *, golden_rtmr0: bool) -> ExpectedMeasurements:
    """The expected measurements of a TDX boot: RTMR0 only when a golden log gave its events."""
    names = _RTMRS if golden_rtmr0 else _RTMRS[1:]
    return ExpectedMeasurements(
        tee="tdx",
        mrtd=boot.mrtd.hex(),
        mrconfigid=boot.mrconfigid.hex(),
        rtmrs={name: boot.rtmr(_RTMRS.index(name)).hex() for name in names},
        events={
            name: [
                MeasuredEvent(digest=e.digest.hex(), description=e.description)
                for e in boot.register_events(_RTMRS.index(name))
            ]
            for name in names
        },
        artifacts=subjects,
    )


def _measure_snp(recipe: Recipe) -> ExpectedMeasurements:
    artifacts, subjects = resolve_snp(recipe)
    assert recipe.snp is not None  # a validated SEV-SNP recipe has its options
    digest = snp_launch_digest(
        artifacts.firmware,
        vcpus=recipe.snp.vcpus,
        vcpu_type=recipe.snp.vcpu_type,
        guest_features=recipe.snp.guest_features,
        vmm=recipe.snp.vmm,
        kernel=artifacts.kernel,
        initrd=artifacts.initrd,
        cmdline=recipe.cmdline,
    )
    host_data = fit(initdata_digest(artifacts.initdata), HOST_DATA_SIZE) if artifacts.initdata is not None else None
    return ExpectedMeasurements(
        tee="snp",
        snp_measurement=digest.hex(),
        host_data=host_data.hex() if host_data is not None else None,
        artifacts=subjects,
    )
