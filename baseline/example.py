"""The example build: boot artifacts made from scratch, well-formed enough for every calculator.

A TDVF-shaped firmware image (TDVF metadata, SEV metadata, OVMF GUIDed table with its footer), a
bzImage-shaped PE/COFF kernel with a Linux setup header, an initrd, initdata and an OCI image
layout, and a recipe over them. No real firmware or kernel can be shipped or booted here, so the
demo, the tests and the benchmarks build, measure and boot (in the simulated TDX module) these.
"""

from __future__ import annotations

import hashlib
import json
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
SEV_METADATA_GUID = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")
SEV_ES_RESET_BLOCK_GUID = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
SEV_HASH_TABLE_GUID = uuid.UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
FOUR_GIB = 1 << 32
PAGE = 0x1000
MR_EXTEND, PAGE_AUG = 1, 2
BFV, CFV, TD_HOB, TEMP_MEM, PERM_MEM = 0, 1, 2, 3, 4


@dataclass
class Section:
    """A TDVF_SECTION as it is written into the metadata."""

    data_offset: int
    raw_size: int
    address: int
    memory_size: int
    type: int
    attributes: int

    def pack(self) -> bytes:
        """The 32-byte TDVF_SECTION record."""
        return struct.pack(
            "<IIQQII", self.data_offset, self.raw_size, self.address, self.memory_size, self.type, self.attributes
        )


def guid_entry(guid: uuid.UUID, data: bytes) -> bytes:
    """One entry of OVMF's GUIDed table: data, u16 length of the whole entry, GUID."""
    return data + struct.pack("<H", len(data) + 18) + guid.bytes_le


@dataclass
class Firmware:
    """A firmware image of `pages` pages: CFV in the first two, BFV the rest, the metadata near the end.

    `sections` defaults to what a TDVF declares (BFV extended, CFV, TD_HOB, TempMem, PermMem
    added by PAGE.AUG); `sev` adds the SEV-SNP metadata sev-snp-measure reads.
    """

    pages: int = 8
    sections: list[Section] | None = None
    sev: bool = True
    signature: bytes = b"TDVF"
    seed: bytes = b"teeplane test firmware"
    extra_entries: list[bytes] = field(default_factory=list)

    def default_sections(self) -> list[Section]:
        """The sections a TDVF declares for an image of this size."""
        size = self.pages * PAGE
        base = FOUR_GIB - size
        return [
            Section(0x2000, size - 0x2000, base + 0x2000, size - 0x2000, BFV, MR_EXTEND),
            Section(0, 0x2000, base, 0x2000, CFV, 0),
            Section(0, 0, 0x809000, 0x2000, TD_HOB, 0),
            Section(0, 0, 0x800000, 0x6000, TEMP_MEM, 0),
            Section(0, 0, 0x1000000, 0x100000, PERM_MEM, PAGE_AUG),
        ]

    def build(self) -> bytes:
        """The firmware image."""
        size = self.pages * PAGE
        image = bytearray(_pseudo_random(self.seed, size))
        sections = self.default_sections() if self.sections is None else self.sections
        descriptor = self.signature + struct.pack("<III", 16 + 32 * len(sections), 1, len(sections))
        descriptor += b"".join(s.pack() for s in sections)
        tdvf_at = size - PAGE  # the last page holds the metadata and the table
        image[tdvf_at : tdvf_at + len(descriptor)] = descriptor
        entries = [guid_entry(TDX_METADATA_OFFSET_GUID, struct.pack("<I", size - tdvf_at))]
        if self.sev:
            sev_at = tdvf_at + 0x400
            items = [(0x800000, 0x9000, 1), (0x80D000, 0x1000, 2), (0x80E000, 0x1000, 3), (0x80F000, 0x1000, 0x10)]
            asev = b"ASEV" + struct.pack("<III", 16 + 12 * len(items), 1, len(items))
            asev += b"".join(struct.pack("<III", *item) for item in items)
            image[sev_at : sev_at + len(asev)] = asev
            entries += [
                guid_entry(SEV_METADATA_GUID, struct.pack("<I", size - sev_at)),
                guid_entry(SEV_ES_RESET_BLOCK_GUID, struct.pack("<I", 0xFFFFF000)),
                guid_entry(SEV_HASH_TABLE_GUID, struct.pack("<II", 0x80FC00, 0x400)),
            ]
        table = b"".join(entries + self.extra_entries)
        table += struct.pack("<H", len(table) + 18) + FOOTER_GUID.bytes_le
        end = size - 32
        image[end - len(table) : end] = table
        image[end:] = b"\x90" * 16 + b"\xeb\xfe" + bytes(14)  # a reset vector's worth of bytes
        return bytes(image)


def footer_offset(image: bytes) -> int:
    """Where the footer GUID of an image built by `Firmware` starts."""
    return len(image) - 48


@dataclass
class Kernel:
    """A bzImage-shaped PE32+ image: MZ/PE headers, a Linux setup header at 0x1F1, three sections.

    The section table lists .setup, .text, .data while the file holds them as .setup, .data,
    .text, so Authenticode's sort by PointerToRawData matters. `cert` appends a certificate
    table named by the security data directory; `trailing` adds bytes after the sections.
    """

    protocol: int = 0x020F
    xloadflags: int = 0x7F
    loadflags: int = 0x01
    cert: bytes = b""
    trailing: bytes = b""
    seed: bytes = b"teeplane test kernel"
    checksum: int = 0x1234ABCD

    def build(self) -> bytes:
        """The kernel image."""
        sections = [(b".setup", 0x200, 0x200), (b".text", 0x600, 0x400), (b".data", 0x400, 0x200)]
        size = 0xA00 + len(self.trailing)
        image = bytearray(_pseudo_random(self.seed, size + len(self.cert)))
        image[0:0x40] = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)
        optional_size = 112 + 8 * 6
        coff = struct.pack("<HHIIIHH", 0x8664, len(sections), 0, 0, 0, optional_size, 0x0206)
        optional = struct.pack("<HBBIIIII", 0x20B, 2, 20, 0x800, 0x200, 0, 0x600, 0x600)
        optional += struct.pack("<QIIHHHHHHIIIIHHQQQQII", 0, 0x200, 0x200, 0, 0, 0, 0, 0, 0, 0, 0xC00, 0x200,
                                self.checksum, 10, 0, 0, 0, 0, 0, 0, 6)  # fmt: skip
        directories = [(0, 0)] * 6
        if self.cert:
            directories[4] = (size, len(self.cert))
        optional += b"".join(struct.pack("<II", *d) for d in directories)
        assert len(optional) == optional_size
        table = b"".join(
            name.ljust(8, b"\0") + struct.pack("<IIIIIIHHI", size_, pointer, size_, pointer, 0, 0, 0, 0, 0x60000020)
            for name, pointer, size_ in sections
        )
        headers = b"PE\0\0" + coff + optional + table
        image[0x40 : 0x40 + len(headers)] = headers
        assert 0x40 + len(headers) <= 0x1F1
        setup = bytearray(image[0x1F1:0x270])
        struct.pack_into("<B", setup, 0, 1)  # setup_sects
        setup[0x202 - 0x1F1 : 0x206 - 0x1F1] = b"HdrS"
        struct.pack_into("<H", setup, 0x206 - 0x1F1, self.protocol)
        struct.pack_into("<BB", setup, 0x210 - 0x1F1, 0, self.loadflags)
        struct.pack_into("<HBB", setup, 0x224 - 0x1F1, 0, 0, 0)
        struct.pack_into("<IIII", setup, 0x218 - 0x1F1, 0, 0, 0, 0)
        struct.pack_into("<I", setup, 0x228 - 0x1F1, 0)
        struct.pack_into("<I", setup, 0x22C - 0x1F1, 0x7FFFFFFF)
        struct.pack_into("<H", setup, 0x236 - 0x1F1, self.xloadflags)
        image[0x1F1:0x270] = setup
        if self.trailing:
            image[0xA00:size] = self.trailing
        if self.cert:
            image[size:] = struct.pack("<IHH", len(self.cert), 0x0200, 0x0002) + self.cert[8:]
        return bytes(image)


def initdata(policy: str = "default allow := true") -> bytes:
    """A CoCo initdata document (sha384)."""
    return f'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"policy.rego" = """{policy}"""\n'.encode()


def oci_layout(directory: Path, content: bytes = b"app", ref_name: str | None = "latest") -> str:
    """Write an OCI image layout with one manifest; return the manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layer = content
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (layer, config):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    ).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    (blobs / digest).write_bytes(manifest)
    entry = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    if ref_name is not None:
        entry["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return f"sha256:{digest}"


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}", "size": len(blob)}


def _pseudo_random(seed: bytes, size: int) -> bytes:
    blocks = (hashlib.sha512(seed + i.to_bytes(8, "little")).digest() for i in range((size + 63) // 64))
    return b"".join(blocks)[:size]


#: A container image by digest, as recipes name images.
IMAGE = "registry.example/app@sha256:" + "ab" * 32


def recipe_data(**overrides: Any) -> dict[str, Any]:
    """A TDX recipe over the artifacts `write_build` writes (OVMF.fd, bzImage, initrd.img, initdata.toml,
    an OCI layout in sidecar/), with `overrides` replacing top-level entries."""
    data: dict[str, Any] = {
        "tee": "tdx",
        "firmware": {"source": "OVMF.fd"},
        "kernel": {"source": "bzImage"},
        "initrd": {"source": "initrd.img"},
        "cmdline": "console=hvc0 root=/dev/vda1",
        "initdata": {"source": "initdata.toml"},
        "images": [{"ref": IMAGE}, {"name": "registry.example/sidecar", "oci_layout": {"source": "sidecar"}}],
        "layout": {"qemu": "9.1", "memory": "2G"},
    }
    return data | overrides


def write_build(directory: Path) -> Path:
    """Write a build's artifacts into `directory` (what `recipe_data` names): firmware, kernel,
    initrd, initdata and an OCI layout."""
    (directory / "OVMF.fd").write_bytes(Firmware().build())
    (directory / "bzImage").write_bytes(Kernel().build())
    (directory / "initrd.img").write_bytes(b"initrd " * 1000)
    (directory / "initdata.toml").write_bytes(initdata())
    oci_layout(directory / "sidecar")
    return directory


def write_recipe(directory: Path, **overrides: Any) -> Path:
    """`recipe_data(**overrides)` written as `directory/recipe.yaml`."""
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_data(**overrides)))
    return path
