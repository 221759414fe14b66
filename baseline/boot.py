"""Boot TEEPlane's simulated TDX module from a recipe, with the rules the baseline is built with.

The TD gets the MRTD and MRCONFIGID the calculators compute and extends its RTMRs with every
event of the boot, in order, with the event type and data a real TD logs; so its quote and its
event log (`teeplane.attestation.sim.eventlog.write_event_log(td.events)`) match
`measure_recipe(recipe)` exactly.
"""

from __future__ import annotations

from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.baseline.errors import BuildInputError, Code
from teeplane.baseline.measure.tdx import TdxArtifacts, boot_tdx
from teeplane.baseline.recipe import Recipe
from teeplane.baseline.resolve import resolve_tdx


def boot_simulated_td(authority: SimulationAuthority, recipe_or_artifacts: Recipe | TdxArtifacts) -> SimulatedTd:
    """A simulated TD (signing quotes under `authority`) booted from a TDX recipe or its resolved artifacts."""
    if isinstance(recipe_or_artifacts, Recipe):
        if recipe_or_artifacts.tee != "tdx":
            raise BuildInputError(Code.RECIPE_MALFORMED, "only a TDX recipe boots the simulated TD", where="tee")
        artifacts, _ = resolve_tdx(recipe_or_artifacts)
    else:
        artifacts = recipe_or_artifacts
    boot = boot_tdx(artifacts)
    td = SimulatedTd(authority, mrtd=boot.mrtd, mrconfigid=boot.mrconfigid)
    for event in boot.events:
        td.extend_rtmr(event.rtmr, event.digest, data=event.data, event_type=event.event_type)
    return td
