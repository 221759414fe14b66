"""MRTD from a TDVF image: the OVMF GUIDed table, the TDVF metadata, the TDX module's records."""

from __future__ import annotations

import hashlib
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import (
    BFV,
    CFV,
    MR_EXTEND,
    PAGE,
    PAGE_AUG,
    PERM_MEM,
    TD_HOB,
    TEMP_MEM,
    Firmware,
    Section,
    footer_offset,
)
from teeplane.baseline.measure.tdvf import (
    TDX_METADATA_OFFSET_GUID,
    PageOrder,
    SectionType,
    ovmf_table,
    tdvf_mrtd,
    tdvf_sections,
)

FOUR_GIB = 1 << 32


def record(operation: bytes, gpa: int) -> bytes:
    """A 128-byte TDX module measurement record, written out field by field."""
    out = bytearray(128)
    out[: len(operation)] = operation
    out[16:24] = struct.pack("<Q", gpa)
    return bytes(out)


def two_page_firmware() -> tuple[bytes, int]:
    """A firmware whose BFV is two extended pages (the image's last two), one TD_HOB page, and
    PermMem accepted later (PAGE_AUG: never measured)."""
    size = 4 * PAGE
    bfv = FOUR_GIB - 2 * PAGE
    sections = [
        Section(2 * PAGE, 2 * PAGE, bfv, 2 * PAGE, BFV, MR_EXTEND),
        Section(0, 0, 0x809000, PAGE, TD_HOB, 0),
        Section(0, 0, 0x1000000, 0x10000, PERM_MEM, PAGE_AUG),
    ]
    return Firmware(pages=4, sections=sections, sev=False).build(), size


def test_the_metadata_is_found_through_the_footer_table() -> None:
    image = Firmware().build()
    table = ovmf_table(image)
    assert struct.unpack("<I", table[TDX_METADATA_OFFSET_GUID])[0] == PAGE  # the descriptor starts a page from the end
    sections = tdvf_sections(image)
    assert [s.type for s in sections] == [
        SectionType.BFV,
        SectionType.CFV,
        SectionType.TD_HOB,
        SectionType.TEMP_MEM,
        SectionType.PERM_MEM,
    ]
    assert sections[0].extended and sections[0].added and not sections[4].added and not sections[1].extended


def test_mrtd_is_sha384_over_page_add_and_mr_extend_records_in_both_orders() -> None:
    image, size = two_page_firmware()
    bfv = FOUR_GIB - 2 * PAGE

    def extend(page: int) -> bytes:
        out = b""
        for chunk in range(0, PAGE, 256):
            gpa = bfv + page * PAGE + chunk
            offset = 2 * PAGE + page * PAGE + chunk
            out += record(b"MR.EXTEND", gpa) + image[offset : offset + 256]
        return out

    add = [record(b"MEM.PAGE.ADD", bfv), record(b"MEM.PAGE.ADD", bfv + PAGE)]
    hob = record(b"MEM.PAGE.ADD", 0x809000)
    two_pass = hashlib.sha384(add[0] + add[1] + extend(0) + extend(1) + hob).digest()
    single_pass = hashlib.sha384(add[0] + extend(0) + add[1] + extend(1) + hob).digest()
    assert tdvf_mrtd(image, PageOrder.TWO_PASS) == two_pass
    assert tdvf_mrtd(image, PageOrder.SINGLE_PASS) == single_pass
    assert two_pass != single_pass
    assert len(image) == size


def test_only_extended_content_and_added_pages_count() -> None:
    image = Firmware().build()
    mrtd = tdvf_mrtd(image, PageOrder.SINGLE_PASS)
    in_cfv = bytearray(image)
    in_cfv[0x100] ^= 1  # the CFV is added but not extended
    assert tdvf_mrtd(bytes(in_cfv), PageOrder.SINGLE_PASS) == mrtd
    in_bfv = bytearray(image)
    in_bfv[0x2100] ^= 1
    assert tdvf_mrtd(bytes(in_bfv), PageOrder.SINGLE_PASS) != mrtd


def malformed(image: bytes, match: str) -> None:
    with pytest.raises(BuildInputError, match=match) as caught:
        tdvf_mrtd(image, PageOrder.TWO_PASS)
    assert caught.value.code == "tdvf.malformed" and caught.value.where is not None


def test_bad_signature() -> None:
    malformed(Firmware(signature=b"TDVG").build(), "'TDVF' signature")


def test_bad_footer_guid() -> None:
    image = bytearray(Firmware().build())
    image[footer_offset(image)] ^= 1
    malformed(bytes(image), "no OVMF table footer GUID")


def test_truncated_images() -> None:
    image = Firmware().build()
    malformed(image[:40], "footer")
    malformed(image[: len(image) - 1], "footer")  # the footer moved: not where it must be
    malformed(image[PAGE * 7 + 16 :], "outside the image")  # the table survives, the descriptor offset does not


def test_bad_table_lengths() -> None:
    image = bytearray(Firmware().build())
    at = footer_offset(image) - 2
    struct.pack_into("<H", image, at, 0xFFFF)
    malformed(bytes(image), "table length")
    zero_entry = Firmware(extra_entries=[struct.pack("<H", 0) + bytes(16)]).build()
    malformed(zero_entry, "has length 0")


def test_missing_tdx_entry() -> None:
    image = bytearray(Firmware(sev=False).build())
    table_guid_at = footer_offset(image) - 18
    image[table_guid_at] ^= 1  # the only entry's GUID
    malformed(bytes(image), "no TDX metadata offset entry")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: setattr(s[0], "raw_size", s[0].raw_size + PAGE), "more raw data than guest memory"),
        (lambda s: setattr(s[0], "data_offset", 0x3000), "data needs"),
        (lambda s: setattr(s[2], "address", 0x809001), "not page aligned"),
        (lambda s: setattr(s[2], "type", 9), "unknown TDVF section type 9"),
        (lambda s: setattr(s[0], "attributes", MR_EXTEND | PAGE_AUG), "both MR_EXTEND and PAGE_AUG"),
        (lambda s: setattr(s[0], "attributes", 4), "unknown attribute bits"),
        (lambda s: setattr(s[1], "raw_size", 0), "CFV has no raw data"),
        (lambda s: setattr(s[2], "raw_size", PAGE), "TD_HOB carries raw data"),
        (lambda s: setattr(s[3], "memory_size", 1 << 40), "more than"),
        (lambda s: setattr(s[3], "address", (1 << 64) - PAGE), "past the end of the address space"),
    ],
)
def test_bad_sections(change: object, match: str) -> None:
    sections = Firmware().default_sections()
    assert callable(change)
    change(sections)
    malformed(Firmware(sections=sections).build(), match)


def test_bad_descriptor_fields() -> None:
    image = bytearray(Firmware().build())
    descriptor = len(image) - PAGE
    struct.pack_into("<I", image, descriptor + 8, 2)
    malformed(bytes(image), "version 2")
    struct.pack_into("<II", image, descriptor + 8, 1, 6)  # one more section than the length covers
    malformed(bytes(image), "does not fit 6 sections")


def test_cfv_type_numbers_are_the_spec_ones() -> None:
    assert (BFV, CFV, TD_HOB, TEMP_MEM) == (SectionType.BFV, SectionType.CFV, SectionType.TD_HOB, SectionType.TEMP_MEM)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_images_fail_only_with_typed_errors(data: st.DataObject) -> None:
    image = bytearray(Firmware(pages=4, sev=False).build())
    descriptor, table = (len(image) - PAGE, len(image) - PAGE + 16 + 32 * 5), (len(image) - 160, len(image))
    region = data.draw(st.sampled_from([descriptor, table]))
    for _ in range(data.draw(st.integers(1, 8))):
        image[data.draw(st.integers(*region).filter(lambda i: i < len(image)))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(image)))
    try:
        tdvf_mrtd(bytes(image[:cut] if data.draw(st.booleans()) else image), PageOrder.SINGLE_PASS)
    except BuildInputError as e:
        assert e.code == "tdvf.malformed"


def test_page_aug_memory_costs_nothing_however_large() -> None:
    """PAGE_AUG memory is not part of MRTD, so its size, however large, is not walked."""
    sections = Firmware(pages=4, sev=False).default_sections()
    sections[-1] = Section(0, 0, 1 << 40, (1 << 52) - (1 << 40), PERM_MEM, PAGE_AUG)  # 2^40 pages
    started = time.perf_counter()
    assert len(tdvf_mrtd(Firmware(pages=4, sev=False, sections=sections).build(), PageOrder.SINGLE_PASS)) == 48
    assert time.perf_counter() - started < 1.0
