"""MRTD of a trust domain booted from a TDVF (TDX virtual firmware, OVMF built for TDX) image.

Finding the metadata, as QEMU does (hw/i386/pc_sysfw_ovmf.c) and the TDVF Design Guide (§11) describes:

* The image ends with 32 bytes (the reset vector). Before them stands the footer of OVMF's GUIDed
  table: the GUID 96b582de-1fb2-45f7-baea-a366c55a082d, preceded by a u16 giving the length of the
  whole table, these 18 bytes included.
* The table's entries run backwards from the footer; each is its data, then a u16 length of the
  entire entry (data, length and GUID), then its 16-byte GUID (GUIDs are stored little-endian).
* The entry e47a6535-984a-4798-865e-4685a7bf8ec2 holds, in its last 4 bytes, the distance of the
  TDVF_DESCRIPTOR from the end of the image.
* TDVF_DESCRIPTOR: "TDVF", u32 Length (16 + 32 per section), u32 Version (1), u32 section count,
  then the sections: u32 DataOffset, u32 RawDataSize, u64 MemoryAddress, u64 MemoryDataSize,
  u32 Type (0 BFV, 1 CFV, 2 TD_HOB, 3 TempMem, 4 PermMem, 5 Payload, 6 PayloadParam) and
  u32 Attributes (bit 0 MR_EXTEND, bit 1 PAGE_AUG).

MRTD, as the TDX module builds it while the VMM adds the initial pages (TDX module ABI,
TDH.MEM.PAGE.ADD and TDH.MR.EXTEND): SHA-384 over a sequence of 128-byte records. For each page
of a section not marked PAGE_AUG, TDH.MEM.PAGE.ADD contributes "MEM.PAGE.ADD" (bytes 0..11) with
the page's GPA little-endian at bytes 16..23, zeros elsewhere. For each page of a section marked
MR_EXTEND, TDH.MR.EXTEND runs over each 256-byte chunk: a record "MR.EXTEND" (bytes 0..8) with the
chunk's GPA at bytes 16..23, followed by the chunk itself (two more 128-byte blocks), read from
the image at DataOffset. Sections are taken in metadata order; within a section, QEMU 8 with its
KVM adds every page first and then extends them (two-pass), later versions add and extend page
by page (single-pass). Both orders are supported; which one a VMM uses is a recipe option.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from teeplane.baseline.errors import Code
from teeplane.baseline.measure.binary import Fields

FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_METADATA_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
RESET_VECTOR_SIZE = 32
ENTRY_HEADER_SIZE = 18  # u16 length + GUID
PAGE_SIZE = 0x1000
MR_EXTEND_CHUNK = 0x100
ATTRIBUTE_MR_EXTEND = 0x1
ATTRIBUTE_PAGE_AUG = 0x2
#: Pages the metadata may ask to add: far above what a firmware needs (about a thousand), so a
#: crafted image cannot make the calculator hash without end.
MAX_PAGES = 1 << 18

_SIGNATURE = b"TDVF"
_DESCRIPTOR_SIZE = 16
_SECTION_SIZE = 32
_VERSION = 1


class SectionType(IntEnum):
    """TDVF_SECTION types."""

    BFV = 0
    CFV = 1
    TD_HOB = 2
    TEMP_MEM = 3
    PERM_MEM = 4
    PAYLOAD = 5
    PAYLOAD_PARAM = 6


class PageOrder(StrEnum):
    """How the VMM interleaves TDH.MEM.PAGE.ADD and TDH.MR.EXTEND within a section."""

    TWO_PASS = "two-pass"
    SINGLE_PASS = "single-pass"


@dataclass(frozen=True, slots=True)
class TdvfSection:
    """One TDVF_SECTION of the metadata."""

    data_offset: int
    raw_data_size: int
    memory_address: int
    memory_data_size: int
    type: SectionType
    attributes: int

    @property
    def pages(self) -> int:
        """How many 4 KiB pages the section covers in guest memory."""
        return self.memory_data_size // PAGE_SIZE

    @property
    def extended(self) -> bool:
        """Whether the content is measured into MRTD (MR_EXTEND)."""
        return bool(self.attributes & ATTRIBUTE_MR_EXTEND)

    @property
    def added(self) -> bool:
        """Whether the pages are added before the TD runs (not PAGE_AUG)."""
        return not self.attributes & ATTRIBUTE_PAGE_AUG


def ovmf_table(image: bytes) -> dict[uuid.UUID, bytes]:
    """The entries of OVMF's GUIDed table at the end of `image`, by GUID (data only)."""
    fields = Fields(image, Code.TDVF_MALFORMED, "firmware")
    footer = len(image) - RESET_VECTOR_SIZE - 16
    if footer < 2 or uuid.UUID(bytes_le=fields.bytes(footer, 16, "table footer GUID")) != FOOTER_GUID:
        raise fields.error("no OVMF table footer GUID 48 bytes before the end: not an OVMF/TDVF image", max(footer, 0))
    table_length = fields.uint(footer - 2, 2, "table length") - ENTRY_HEADER_SIZE
    end = footer - 2
    if table_length < 0 or table_length > end:
        raise fields.error(f"the OVMF table length {table_length + ENTRY_HEADER_SIZE} does not fit the image", end)
    start = end - table_length
    entries: dict[uuid.UUID, bytes] = {}
    while end - start >= ENTRY_HEADER_SIZE:
        guid = uuid.UUID(bytes_le=image[end - 16 : end])
        length = fields.uint(end - ENTRY_HEADER_SIZE, 2, "entry length")
        if length < ENTRY_HEADER_SIZE or length > end - start:
            raise fields.error(f"OVMF table entry {guid} has length {length}", end - ENTRY_HEADER_SIZE)
        entries.setdefault(guid, image[end - length : end - ENTRY_HEADER_SIZE])
        end -= length
    if end != start:
        raise fields.error(f"{end - start} stray bytes at the start of the OVMF table", start)
    return entries


def tdvf_sections(image: bytes) -> tuple[TdvfSection, ...]:
    """The sections of the TDVF metadata of `image`, checked against the image and each other."""
    fields = Fields(image, Code.TDVF_MALFORMED, "firmware")
    entry = ovmf_table(image).get(TDX_METADATA_OFFSET_GUID)
    if entry is None or len(entry) < 4:
        raise fields.error("the OVMF table has no TDX metadata offset entry (not a TDX firmware)", len(image))
    offset = len(image) - int.from_bytes(entry[-4:], "little")
    if not 0 <= offset <= len(image) - _DESCRIPTOR_SIZE:
        raise fields.error("the TDX metadata offset points outside the image", max(offset, 0))
    if fields.bytes(offset, 4, "TDVF signature") != _SIGNATURE:
        raise fields.error("the TDVF descriptor has no 'TDVF' signature", offset)
    length = fields.uint(offset + 4, 4, "TDVF descriptor length")
    version = fields.uint(offset + 8, 4, "TDVF descriptor version")
    count = fields.uint(offset + 12, 4, "TDVF section count")
    if version != _VERSION:
        raise fields.error(f"TDVF descriptor version {version} is not {_VERSION}", offset + 8)
    if count == 0 or length != _DESCRIPTOR_SIZE + _SECTION_SIZE * count:
        raise fields.error(f"TDVF descriptor length {length} does not fit {count} sections", offset + 4)
    fields.check(offset, length, "TDVF sections")
    sections = tuple(_section(fields, offset + _DESCRIPTOR_SIZE + _SECTION_SIZE * i) for i in range(count))
    if sum(s.pages for s in sections if s.added) > MAX_PAGES:
        raise fields.error(f"the TDVF metadata adds more than {MAX_PAGES} pages", offset)
    return sections


def _section(fields: Fields, at: int) -> TdvfSection:
    kind = fields.uint(at + 24, 4, "section type")
    if kind not in SectionType._value2member_map_:
        raise fields.error(f"unknown TDVF section type {kind}", at + 24)
    section = TdvfSection(
        data_offset=fields.uint(at, 4, "DataOffset"),
        raw_data_size=fields.uint(at + 4, 4, "RawDataSize"),
        memory_address=fields.uint(at + 8, 8, "MemoryAddress"),
        memory_data_size=fields.uint(at + 16, 8, "MemoryDataSize"),
        type=SectionType(kind),
        attributes=fields.uint(at + 28, 4, "Attributes"),
    )
    name = f"TDVF section {section.type.name}"
    if section.attributes & ~(ATTRIBUTE_MR_EXTEND | ATTRIBUTE_PAGE_AUG):
        raise fields.error(f"{name} has unknown attribute bits {section.attributes:#x}", at + 28)
    if section.extended and not section.added:
        raise fields.error(f"{name} is both MR_EXTEND and PAGE_AUG", at + 28)
    if section.memory_address % PAGE_SIZE or section.memory_data_size % PAGE_SIZE:
        raise fields.error(f"{name} is not page aligned in guest memory", at + 8)
    if section.memory_address + section.memory_data_size > 1 << 64:
        raise fields.error(f"{name} runs past the end of the address space", at + 8)
    if section.raw_data_size > section.memory_data_size:
        raise fields.error(f"{name} has more raw data than guest memory", at + 4)
    if section.type in (SectionType.BFV, SectionType.CFV) and section.raw_data_size == 0:
        raise fields.error(f"{name} has no raw data", at + 4)
    if section.type in (SectionType.TD_HOB, SectionType.TEMP_MEM) and section.raw_data_size:
        raise fields.error(f"{name} carries raw data", at + 4)
    measured = section.memory_data_size if section.extended else section.raw_data_size
    fields.check(section.data_offset, measured, f"{name} data")
    return section


def tdvf_mrtd(image: bytes, order: PageOrder) -> bytes:
    """MRTD of a TD whose VMM loaded `image` adding its pages in `order` (see the module docstring)."""
    h = hashlib.sha384()
    for section in tdvf_sections(image):
        if not section.added:  # PAGE_AUG memory is accepted later by the TD: not part of MRTD
            continue
        pages = range(section.pages)
        if order is PageOrder.TWO_PASS:
            for page in pages:
                _page_add(h, section, page)
            for page in pages:
                _mr_extend(h, image, section, page)
        else:
            for page in pages:
                _page_add(h, section, page)
                _mr_extend(h, image, section, page)
    return h.digest()


def _record(operation: bytes, gpa: int) -> bytes:
    return operation.ljust(16, b"\0") + gpa.to_bytes(8, "little") + bytes(104)


def _page_add(h: hashlib._Hash, section: TdvfSection, page: int) -> None:
    if section.added:
        h.update(_record(b"MEM.PAGE.ADD", section.memory_address + page * PAGE_SIZE))


def _mr_extend(h: hashlib._Hash, image: bytes, section: TdvfSection, page: int) -> None:
    if not section.extended:
        return
    base = page * PAGE_SIZE
    for chunk in range(base, base + PAGE_SIZE, MR_EXTEND_CHUNK):
        h.update(_record(b"MR.EXTEND", section.memory_address + chunk))
        start = section.data_offset + chunk
        h.update(image[start : start + MR_EXTEND_CHUNK])
