"""From a recipe to the calculators' inputs: every artifact read, digested and checked.

Each artifact's source is digested with SHA-384 (and SHA-256 when the recipe pins one). A
`rebuild` input is digested too and must give the same SHA-384, else `artifact.inputs_differ`;
a pinned digest that does not match is `artifact.digest_mismatch`. Every artifact read becomes
an in-toto subject (`Artifact`) of the baseline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from teeplane.baseline.errors import BuildInputError, BuildRefusedError, Code
from teeplane.baseline.fetch import Digested, digest_input, local_path
from teeplane.baseline.measure.golden import rtmr0_events
from teeplane.baseline.measure.tdx import Initrd, TdxArtifacts, TdxLayout
from teeplane.baseline.measurements import Artifact
from teeplane.baseline.oci import layout_manifest_digest
from teeplane.baseline.recipe import ArtifactSource, ImageRef, Layout, OciLayoutImage, Recipe


@dataclass(frozen=True, slots=True)
class SnpArtifacts:
    """The inputs of an SEV-SNP launch digest and HOST_DATA."""

    firmware: bytes
    kernel: bytes | None
    initrd: bytes | None
    initdata: bytes | None


def fetch_artifact(name: str, spec: ArtifactSource, *, keep: bool = False) -> tuple[Artifact, Digested]:
    """Read `spec`'s source (and rebuild), check the pinned digests; the subject and what was read."""
    algorithms = ["sha384"] + (["sha256"] if spec.sha256 else [])
    read = digest_input(spec.source, algorithms, keep=keep, where=f"{name}.source")
    if spec.rebuild is not None:
        again = digest_input(spec.rebuild, ["sha384"], where=f"{name}.rebuild")
        if again.digests["sha384"] != read.digests["sha384"]:
            raise BuildRefusedError(
                Code.ARTIFACT_INPUTS_DIFFER,
                f"{name}: {spec.source} (sha384 {read.digests['sha384'].hex()}) and its rebuild {spec.rebuild} "
                f"(sha384 {again.digests['sha384'].hex()}) differ: the build is not reproducible",
                where=f"{name}.rebuild",
            )
    for algorithm, expected in (("sha384", spec.sha384), ("sha256", spec.sha256)):
        if expected is not None and read.digests[algorithm].hex() != expected:
            raise BuildRefusedError(
                Code.ARTIFACT_DIGEST_MISMATCH,
                f"{name}: {spec.source} has {algorithm} {read.digests[algorithm].hex()}, the recipe pins {expected}",
                where=f"{name}.{algorithm}",
            )
    digests = {algorithm: digest.hex() for algorithm, digest in read.digests.items()}
    return Artifact(name=name, uri=spec.source, digest=digests), read


def image_reference(image: ImageRef | OciLayoutImage, where: str) -> tuple[Artifact, str]:
    """A container image's subject and its "<repository>@<digest>" reference."""
    if isinstance(image, ImageRef):
        return _image_artifact(image.ref, None, image.ref.split("@")[1]), image.ref
    digest = layout_manifest_digest(_directory(image.oci_layout.source, where), image.ref_name, where=where)
    if image.oci_layout.rebuild is not None:
        again = layout_manifest_digest(_directory(image.oci_layout.rebuild, where), image.ref_name, where=where)
        if again != digest:
            raise BuildRefusedError(
                Code.ARTIFACT_INPUTS_DIFFER,
                f"{image.name}: the layout {image.oci_layout.source} has manifest {digest}, "
                f"its rebuild {image.oci_layout.rebuild} has {again}",
                where=f"{where}.oci_layout.rebuild",
            )
    if image.digest is not None and image.digest != digest:
        raise BuildRefusedError(
            Code.ARTIFACT_DIGEST_MISMATCH,
            f"{image.name}: the layout {image.oci_layout.source} has manifest {digest}, the recipe pins {image.digest}",
            where=f"{where}.digest",
        )
    reference = f"{image.name}@{digest}"
    return _image_artifact(reference, image.oci_layout.source, digest), reference


def resolve_tdx(recipe: Recipe) -> tuple[TdxArtifacts, list[Artifact]]:
    """The inputs of a TDX boot from `recipe`, and the subjects read."""
    assert recipe.kernel is not None and recipe.layout is not None  # a validated TDX recipe has both
    subjects: list[Artifact] = []
    firmware = _kept(subjects, "firmware", recipe.firmware)
    kernel = _kept(subjects, "kernel", recipe.kernel)
    initrd = None
    if recipe.initrd is not None:
        subject, read = fetch_artifact("initrd", recipe.initrd)
        subjects.append(subject)
        initrd = Initrd(read.digests["sha384"], read.size)
    cmdline = recipe.cmdline.encode()
    subjects.append(Artifact(name="cmdline", digest={"sha384": hashlib.sha384(cmdline).hexdigest()}))
    initdata = _kept(subjects, "initdata", recipe.initdata) if recipe.initdata else None
    rtmr0 = rtmr0_events(_kept(subjects, "rtmr0", recipe.rtmr0)) if recipe.rtmr0 else ()
    images = []
    for position, image in enumerate(recipe.images):
        subject, reference = image_reference(image, f"images[{position}]")
        subjects.append(subject)
        images.append(reference)
    artifacts = TdxArtifacts(
        firmware=firmware,
        kernel=kernel,
        layout=tdx_layout(recipe.layout),
        cmdline=cmdline,
        initrd=initrd,
        initdata=initdata,
        images=tuple(images),
        rtmr0=rtmr0,
    )
    return artifacts, subjects


def resolve_snp(recipe: Recipe) -> tuple[SnpArtifacts, list[Artifact]]:
    """The inputs of an SEV-SNP launch from `recipe`, and the subjects read."""
    subjects: list[Artifact] = []
    firmware = _kept(subjects, "firmware", recipe.firmware)
    kernel = _kept(subjects, "kernel", recipe.kernel) if recipe.kernel else None
    initrd = _kept(subjects, "initrd", recipe.initrd) if recipe.initrd else None
    if kernel is not None:
        digest = hashlib.sha384(recipe.cmdline.encode()).hexdigest()
        subjects.append(Artifact(name="cmdline", digest={"sha384": digest}))
    initdata = _kept(subjects, "initdata", recipe.initdata) if recipe.initdata else None
    return SnpArtifacts(firmware, kernel, initrd, initdata), subjects


def tdx_layout(layout: Layout) -> TdxLayout:
    """The TDX layout of a recipe: its QEMU version's defaults with the recipe's overrides."""
    derived = TdxLayout.for_qemu(layout.qemu_version(), layout.memory, layout.separator)
    patch = derived.patch_setup_header if layout.patch_setup_header is None else layout.patch_setup_header
    return TdxLayout(layout.page_order or derived.page_order, patch, layout.memory, layout.separator)


def _kept(subjects: list[Artifact], name: str, spec: ArtifactSource) -> bytes:
    subject, read = fetch_artifact(name, spec, keep=True)
    subjects.append(subject)
    assert read.data is not None
    return read.data


def _directory(source: str, where: str) -> Path:
    path = local_path(source)
    if path is None:
        raise BuildInputError(Code.OCI_LAYOUT_MALFORMED, f"{source}: an OCI layout is a local directory", where=where)
    return path


def _image_artifact(reference: str, uri: str | None, digest: str) -> Artifact:
    algorithm, hexdigest = digest.split(":")
    return Artifact(name=f"image:{reference}", uri=uri, digest={algorithm: hexdigest})
