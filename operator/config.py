"""How the operator renders workloads: runtime classes and node labels per TEE, the TEEPlane image,
and the service URLs pods are given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from teeplane.operator.model import PINNED_IMAGE, Tee


@dataclass(frozen=True)
class Placement:
    """Where a TEE's pods run: a Kata runtime class, and a node label that marks capable nodes."""

    runtime_class: str
    node_label: str
    node_value: str


def default_placements() -> dict[Tee, Placement]:
    """kata-deploy's runtime classes; TDX/SNP nodes labelled `teeplane.io/tee`, any Kata node for sim."""
    return {
        "tdx": Placement("kata-qemu-tdx", "teeplane.io/tee", "tdx"),
        "snp": Placement("kata-qemu-snp", "teeplane.io/tee", "snp"),
        "sim": Placement("kata-qemu-coco-dev", "katacontainers.io/kata-runtime", "true"),
    }


@dataclass(frozen=True)
class RenderConfig:
    """Operator-wide settings that go into every rendered Deployment."""

    #: The TEEPlane image (digest-pinned) that runs the agent init container and the EPS sidecar.
    teeplane_image: str
    ras_url: str
    tks_url: str
    placements: dict[Tee, Placement] = field(default_factory=default_placements)
    #: PEM certificates the agent trusts for RAS and TKS (the operator's --ca-file); None: the image's trust store.
    ca_bundle: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(PINNED_IMAGE, self.teeplane_image):
            raise ValueError(f"the TEEPlane image must be pinned by digest (name@sha256:...): {self.teeplane_image}")
