"""The example TD of the simulated TDX module: what `teeplane eps serve --provider simulated` boots
by default, and what tests attest. (`teeplane.baseline.example` has a build that calculators can
measure; this one is measured directly, event by event.)"""

from __future__ import annotations

import hashlib

from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd

#: What the example TD boots, measured the way the simulated TDX module measures it.
EXAMPLE_BOOT = {
    "firmware": b"TEEPlane example TDVF image",
    "initdata": b'algorithm = "sha384"\nversion = "0.1.0"\n[data]\n"policy.rego" = "default allow := true"\n',
    "kernel": b"TEEPlane example kernel",
    "cmdline": "console=hvc0 root=/dev/vda1".encode("utf-16-le"),
    "initrd": b"TEEPlane example initrd",
    "image": b"registry.example/app@sha256:" + hashlib.sha256(b"app").hexdigest().encode(),
}


def boot_example_td(authority: SimulationAuthority) -> SimulatedTd:
    """A simulated TD booted from the example artifacts (MRTD, MRCONFIGID, RTMR1..3 events)."""
    td = SimulatedTd(
        authority,
        mrtd=hashlib.sha384(EXAMPLE_BOOT["firmware"]).digest(),
        mrconfigid=hashlib.sha384(EXAMPLE_BOOT["initdata"]).digest(),
    )
    td.extend_rtmr_event(1, EXAMPLE_BOOT["kernel"])
    td.extend_rtmr_event(2, EXAMPLE_BOOT["cmdline"])
    td.extend_rtmr_event(2, EXAMPLE_BOOT["initrd"])
    td.extend_rtmr_event(3, EXAMPLE_BOOT["image"])
    return td
