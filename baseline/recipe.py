"""Baseline recipes: the TEE type, a build's artifacts (where to read them and what they must digest
to), and the VMM layout the measurements depend on. Read from YAML by `load_recipe`.

```yaml
tee: tdx
firmware: {source: OVMF.fd, sha384: 1b2c...}         # a path (relative to the recipe), file:// or http(s):// URL
kernel: {source: bzImage, rebuild: ../rebuild/bzImage}  # a second, independent build: must digest the same
initrd: {source: initrd.img}
cmdline: console=hvc0 root=/dev/vda1
initdata: {source: initdata.toml}
images:
  - ref: registry.example/app@sha256:4f1e...          # pinned by digest
  - name: registry.example/sidecar                     # or an OCI image layout directory
    oci_layout: {source: sidecar-layout}
layout: {qemu: "9.1", memory: 2G}                      # TDX: VMM version family, guest memory
rtmr0: {source: golden-ccel.bin}                       # TDX: RTMR0 events from a recorded log
snp: {vcpus: 2, vcpu_type: EPYC-v4}                    # SEV-SNP: what the launch digest depends on
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from teeplane.attestation.reference import Hex32, Hex48
from teeplane.baseline.errors import BuildInputError, Code
from teeplane.baseline.measure.snp import VCPU_TYPES
from teeplane.baseline.measure.tdvf import PageOrder
from teeplane.baseline.measure.tdx import Separator

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_IMAGE_REF = re.compile(r"[^\s@]+@(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
_URL_SCHEMES = ("file://", "http://", "https://")
#: The key `load_recipe` passes in the validation context: the directory relative paths start from.
BASE_DIR = "base_dir"
#: The oldest QEMU whose TDX layout is modelled.
MIN_QEMU = 8


def _memory_size(value: object) -> object:
    """A memory size: bytes as an integer, or a string such as "2G", "512M" (binary units)."""
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)\s*([KMGT]?)(i?B)?", value.strip(), re.IGNORECASE)
        if match is None:
            raise ValueError(f"{value!r} is not a memory size such as 2G or 512M")
        return int(match[1]) * _SIZE_UNITS[match[2].upper()]
    return value


MemorySize = Annotated[int, BeforeValidator(_memory_size), Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _located(value: str | None, info: ValidationInfo) -> str | None:
    """A URL as it is; a plain relative path made absolute against the recipe's directory."""
    if value is None:
        return None
    if not value:
        raise ValueError("the source is empty")
    if "://" in value:
        if not value.startswith(_URL_SCHEMES):
            raise ValueError(f"{value!r}: only plain paths and file://, http://, https:// URLs are read")
        return value
    base = (info.context or {}).get(BASE_DIR)
    path = Path(value).expanduser()
    return str(path if path.is_absolute() or base is None else Path(base) / path)


class ArtifactSource(_Model):
    """Where an artifact is read from and what it must digest to.

    `rebuild` names a second, independent input (another build of the same source): both are
    digested and must agree. `sha384` / `sha256` pin the expected digest.
    """

    source: str
    rebuild: str | None = None
    sha384: Hex48 | None = None
    sha256: Hex32 | None = None

    @field_validator("source", "rebuild")
    @classmethod
    def _locate(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _located(value, info)


class ImageRef(_Model):
    """A container image pinned by digest: "<repository>@sha256:<hex>"."""

    ref: str

    @field_validator("ref")
    @classmethod
    def _check(cls, value: str) -> str:
        if not _IMAGE_REF.fullmatch(value):
            raise ValueError(f"{value!r} is not <repository>@sha256:<64 hex digits>")
        return value


class OciLayoutImage(_Model):
    """A container image as an OCI image layout directory; its manifest digest is read from index.json.

    `ref_name` picks a manifest by its org.opencontainers.image.ref.name annotation when the index
    holds several; `digest` pins the expected manifest digest.
    """

    name: str = Field(pattern=r"^[^\s@:]+(:\d+)?(/[^\s@:]+)*$")
    oci_layout: ArtifactSource
    ref_name: str | None = None
    digest: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")

    @field_validator("oci_layout")
    @classmethod
    def _no_file_digests(cls, value: ArtifactSource) -> ArtifactSource:
        if value.sha256 or value.sha384:
            raise ValueError("an OCI layout is pinned by its manifest digest (digest), not by sha256/sha384")
        return value


class Layout(_Model):
    """What the VMM decides: its version family and guest memory (TDX), with explicit overrides."""

    qemu: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$", description="QEMU version, e.g. 9.1 or 8.2.2")
    memory: MemorySize = 2 << 30
    page_order: Annotated[PageOrder | None, Field(strict=False)] = Field(
        default=None, description="override the MRTD page order of the QEMU version"
    )
    patch_setup_header: bool | None = Field(default=None, description="override whether QEMU patches the bzImage")
    separator: Annotated[Separator, Field(strict=False)] = Separator.RTMR1

    @field_validator("qemu")
    @classmethod
    def _modelled(cls, value: str) -> str:
        if int(value.split(".")[0]) < MIN_QEMU:
            raise ValueError(f"QEMU {value}: versions before {MIN_QEMU}.0 (pre-upstream TDX trees) are not modelled")
        return value

    def qemu_version(self) -> tuple[int, int]:
        """(major, minor) of `qemu`."""
        major, minor = self.qemu.split(".")[:2]
        return int(major), int(minor)


class SnpOptions(_Model):
    """What an SEV-SNP launch digest depends on beyond the artifacts."""

    vcpus: int = Field(gt=0, le=512)
    vcpu_type: str = Field(description="QEMU CPU model, e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa")

    @field_validator("vcpu_type")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in VCPU_TYPES:
            raise ValueError(f"unknown vCPU type {value!r}; known: {', '.join(VCPU_TYPES)}")
        return value

    guest_features: int = Field(default=1, ge=0, description="SEV_FEATURES of the VMSA (1: SNP active)")
    vmm: Literal["QEMU", "ec2", "gce"] = "QEMU"


class Recipe(_Model):
    """A build to baseline: which TEE, which artifacts, which VMM layout."""

    tee: Literal["tdx", "snp"]
    firmware: ArtifactSource
    kernel: ArtifactSource | None = None
    initrd: ArtifactSource | None = None
    cmdline: str = ""
    initdata: ArtifactSource | None = None
    images: list[ImageRef | OciLayoutImage] = Field(default_factory=list)
    layout: Layout | None = None
    rtmr0: ArtifactSource | None = Field(default=None, description="a golden CCEL log for RTMR0 (TDX)")
    snp: SnpOptions | None = None

    @field_validator("cmdline")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("the kernel command line contains a NUL character")
        return value

    @model_validator(mode="after")
    def _check_tee(self) -> Self:
        if self.tee == "tdx":
            if self.kernel is None or self.layout is None:
                raise ValueError("a TDX recipe names a kernel and a layout (QEMU version, memory)")
            if self.snp is not None:
                raise ValueError("snp options do not apply to a TDX recipe")
        else:
            if self.snp is None:
                raise ValueError("an SEV-SNP recipe names its snp options (vcpus, vcpu_type)")
            if self.layout is not None or self.rtmr0 is not None or self.images:
                raise ValueError("layout, rtmr0 and images apply to TDX recipes only")
        if self.initrd is not None and self.kernel is None:
            raise ValueError("an initrd needs a kernel")
        return self


def parse_recipe(data: Any, base_dir: Path | None = None) -> Recipe:
    """A recipe from its parsed YAML/JSON; relative paths start at `base_dir`. Errors name the field."""
    try:
        return Recipe.model_validate(data, context={BASE_DIR: base_dir})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "recipe"
        details = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'recipe'}: {err['msg']}" for err in e.errors())
        raise BuildInputError(Code.RECIPE_MALFORMED, f"recipe: {details}", where=where) from None


def load_recipe(path: Path) -> Recipe:
    """Read a YAML recipe; relative artifact paths are taken relative to the recipe's directory."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BuildInputError(Code.RECIPE_MALFORMED, f"cannot read the recipe {path}: {e}", where=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BuildInputError(Code.RECIPE_MALFORMED, f"{path} is not YAML: {e}", where=str(path)) from None
    return parse_recipe(data, path.resolve().parent)
