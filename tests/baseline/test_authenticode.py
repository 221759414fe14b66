"""Authenticode SHA-384 of PE/COFF images: EDK2's rules, checked against LIEF, and malformed images."""

from __future__ import annotations

import hashlib
import struct

import lief
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import Kernel
from teeplane.baseline.measure.authenticode import authenticode_sha384

OPTIONAL = 0x58  # e_lfanew 0x40 + "PE\0\0" + COFF header
CHECKSUM = OPTIONAL + 64
SECURITY_DIRECTORY = OPTIONAL + 112 + 4 * 8
SECTION_TABLE = OPTIONAL + 160

lief.logging.disable()


def lief_authentihash(image: bytes) -> bytes:
    """The Authenticode SHA-384 LIEF computes (an independent implementation)."""
    binary = lief.PE.parse(list(image))
    assert binary is not None
    return bytes(binary.authentihash(lief.PE.ALGORITHMS.SHA_384))


@pytest.mark.parametrize(
    "kernel",
    [Kernel(), Kernel(cert=b"\x30\x82" + bytes(62)), Kernel(cert=bytes(64), trailing=b"appended data 8"[:8] * 3)],
    ids=["plain", "signed", "signed-with-trailing-data"],
)
def test_agrees_with_lief(kernel: Kernel) -> None:
    image = kernel.build()
    assert authenticode_sha384(image) == lief_authentihash(image)


def test_checksum_and_certificate_table_are_not_hashed_but_sections_are() -> None:
    image = Kernel(cert=bytes(64)).build()
    digest = authenticode_sha384(image)
    assert authenticode_sha384(Kernel(cert=b"\xff" * 64, checksum=0).build()) == digest
    changed = bytearray(image)
    changed[0x700] ^= 1  # inside .text
    assert authenticode_sha384(bytes(changed)) != digest


def test_sections_are_hashed_by_file_offset_and_trailing_data_follows_edk2() -> None:
    """Two sections listed out of file order with a gap between them: EDK2 hashes them by
    PointerToRawData, then FileSize - SUM_OF_BYTES_HASHED bytes taken from offset SUM_OF_BYTES_HASHED."""
    image = bytearray(Kernel().build())
    struct.pack_into("<H", image, 0x46, 2)  # NumberOfSections
    struct.pack_into("<II", image, SECTION_TABLE + 16, 0x200, 0x600)  # first listed: 0x600..0x800
    struct.pack_into("<II", image, SECTION_TABLE + 40 + 16, 0x100, 0x200)  # second listed: 0x200..0x300
    headers = image[:CHECKSUM] + image[CHECKSUM + 4 : SECURITY_DIRECTORY] + image[SECURITY_DIRECTORY + 8 : 0x200]
    hashed = 0x200 + 0x100 + 0x200
    expected = headers + image[0x200:0x300] + image[0x600:0x800] + image[hashed:]
    assert authenticode_sha384(bytes(image)) == hashlib.sha384(expected).digest()


def test_pe32_images_use_their_own_offsets() -> None:
    """A PE32 optional header moves NumberOfRvaAndSizes and the data directories 16 bytes up."""
    image = bytearray(Kernel().build())
    struct.pack_into("<H", image, OPTIONAL, 0x10B)
    struct.pack_into("<I", image, OPTIONAL + 92, 4)  # no certificate directory: hash past CheckSum to the headers' end
    expected = image[:CHECKSUM] + image[CHECKSUM + 4 : 0x200] + image[0x200:0xA00]
    assert authenticode_sha384(bytes(image)) == hashlib.sha384(expected).digest()


def malformed(image: bytes | bytearray, match: str) -> None:
    with pytest.raises(BuildInputError, match=match) as caught:
        authenticode_sha384(bytes(image))
    assert caught.value.code == "pe.malformed"


def test_malformed_images() -> None:
    image = Kernel(cert=bytes(64)).build()
    malformed(b"", "DOS signature")
    malformed(b"ZM" + image[2:], "no 'MZ'")
    malformed(image[:0x3E], "e_lfanew")
    malformed(image[:0x40] + b"NE\0\0" + image[0x44:], "no 'PE' signature")
    malformed(image[:OPTIONAL] + b"\x07\x01" + image[OPTIONAL + 2 :], "neither PE32 nor PE32\\+")
    malformed(image[:0x900], "section raw data")
    malformed(image[:0x180], "SizeOfHeaders")
    too_many = bytearray(image)
    struct.pack_into("<I", too_many, OPTIONAL + 108, 100)
    malformed(too_many, "do not fit the optional header")
    short_cert = bytearray(image)
    struct.pack_into("<I", short_cert, SECURITY_DIRECTORY + 4, 0x1000)
    malformed(short_cert, "shorter than its sections and certificate table")
    outside = bytearray(image)
    struct.pack_into("<I", outside, SECTION_TABLE + 20, 0xFFFFFF00)
    malformed(outside, "section raw data")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_headers_fail_only_with_typed_errors(data: st.DataObject) -> None:
    image = bytearray(Kernel(cert=bytes(16)).build())
    for _ in range(data.draw(st.integers(1, 6))):
        image[data.draw(st.integers(0, 0x200 - 1))] = data.draw(st.integers(0, 255))
    try:
        authenticode_sha384(bytes(image[: data.draw(st.integers(0, len(image)))]))
    except BuildInputError as e:
        assert e.code == "pe.malformed"
