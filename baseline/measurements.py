"""What a baseline expects a TEE to measure: the contract between the measurement calculators
(which produce it from a recipe's artifacts) and the baseline document (which signs and publishes
it), and the source of RAS reference values.

Digests are lowercase hex. For TDX: MRTD, RTMR0..3 and MRCONFIGID are SHA-384 (48 bytes); each
RTMR also lists the SHA-384 digests of the events extended into it, in order, so a verifier can
match an event log even where a final register value varies (RTMR0 from a recorded golden log).
For SEV-SNP: the launch measurement (48 bytes) and HOST_DATA (32 bytes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from teeplane.attestation.reference import Hex32, Hex48, ReferenceValues, RtmrName


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Artifact(_Model):
    """One input of a build, by name and digest (an in-toto subject)."""

    name: str = Field(min_length=1, description="e.g. firmware, kernel, initrd, cmdline, initdata, image:<ref>")
    uri: str | None = Field(default=None, description="where it was read from (path or URL)")
    digest: dict[str, str] = Field(min_length=1, description="algorithm -> lowercase hex, e.g. {'sha384': ...}")


class MeasuredEvent(_Model):
    """One event extended into a runtime register."""

    digest: Hex48
    description: str = Field(default="", description="what was measured, e.g. 'kernel (Authenticode)'")


class ExpectedMeasurements(_Model):
    """The registers (and per-register events) a TEE booted from the recipe reports."""

    tee: Literal["tdx", "snp"]
    mrtd: Hex48 | None = None
    rtmrs: dict[RtmrName, Hex48] = Field(default_factory=dict, description="final values that are fixed")
    events: dict[RtmrName, list[MeasuredEvent]] = Field(default_factory=dict)
    mrconfigid: Hex48 | None = None
    snp_measurement: Hex48 | None = None
    host_data: Hex32 | None = None
    artifacts: list[Artifact] = Field(default_factory=list)

    def reference_values(self, baseline_id: str | None = None) -> ReferenceValues:
        """RAS reference values accepting exactly these measurements."""
        if self.tee == "snp":
            values: dict[str, object] = {
                "tee": "snp",
                "measurement": [self.snp_measurement] if self.snp_measurement else [],
                "host_data": [self.host_data] if self.host_data else [],
            }
        else:
            values = {
                "tee": "tdx",
                "mrtd": [self.mrtd] if self.mrtd else [],
                "mrconfigid": [self.mrconfigid] if self.mrconfigid else [],
                **{name: [value] for name, value in self.rtmrs.items()},
            }
            if self.events:
                values["rtmr_events"] = {name: [e.digest for e in events] for name, events in self.events.items()}
        if baseline_id is not None:
            values["baseline_id"] = baseline_id
        return ReferenceValues.model_validate(values)
