"""The Authenticode SHA-384 of a PE/COFF image, as UEFI firmware measures a loaded EFI application.

Algorithm (Microsoft Authenticode PE spec, "Calculating the PE Image Hash"; as EDK2 implements it
in MeasureBootPeCoff.c, which measures the kernel of a direct boot into RTMR1):

1. Hash the image from its start up to the optional header's CheckSum field, skip CheckSum (4 bytes).
2. If the optional header has a certificate-table data directory (NumberOfRvaAndSizes > 4): hash
   up to that directory entry, skip it (8 bytes), hash the rest of the headers up to
   SizeOfHeaders. Otherwise hash from after CheckSum up to SizeOfHeaders.
3. Take the section headers with a non-zero SizeOfRawData, sort them by PointerToRawData (stably)
   and hash each section's raw data in that order; SUM_OF_BYTES_HASHED is SizeOfHeaders plus
   their sizes.
4. If the file is longer than SUM_OF_BYTES_HASHED, hash the trailing data except the certificate
   table (the last certificate-directory Size bytes): FileSize - CertSize - SUM_OF_BYTES_HASHED
   bytes from SUM_OF_BYTES_HASHED. A file shorter than that is refused, as EDK2 refuses it.

No padding is added (EDK2 hashes the file as it is; signing tools that pad to 8 bytes hash a
different file). Every header field is bounds-checked; a malformed image raises `pe.malformed`.
"""

from __future__ import annotations

import hashlib

from teeplane.baseline.errors import Code
from teeplane.baseline.measure.binary import Fields

PE32_MAGIC = 0x10B
PE32_PLUS_MAGIC = 0x20B
SECURITY_DIRECTORY = 4
_SECTION_HEADER_SIZE = 40
_COFF_HEADER_SIZE = 20
#: Offsets inside the optional header: CheckSum, SizeOfHeaders; NumberOfRvaAndSizes and the data
#: directories depend on PE32 / PE32+.
_CHECKSUM = 64
_SIZE_OF_HEADERS = 60
_RVA_COUNT = {PE32_MAGIC: 92, PE32_PLUS_MAGIC: 108}
_DIRECTORIES = {PE32_MAGIC: 96, PE32_PLUS_MAGIC: 112}


def authenticode_sha384(image: bytes) -> bytes:
    """The Authenticode SHA-384 of the PE/COFF `image` (see the module docstring)."""
    fields = Fields(image, Code.PE_MALFORMED, "kernel")
    if fields.bytes(0, 2, "DOS signature") != b"MZ":
        raise fields.error("no 'MZ' DOS header: not a PE/COFF image", 0)
    pe = fields.uint(0x3C, 4, "e_lfanew")
    if fields.bytes(pe, 4, "PE signature") != b"PE\0\0":
        raise fields.error("no 'PE' signature where e_lfanew points", pe)
    coff = pe + 4
    section_count = fields.uint(coff + 2, 2, "NumberOfSections")
    optional_size = fields.uint(coff + 16, 2, "SizeOfOptionalHeader")
    optional = coff + _COFF_HEADER_SIZE
    magic = fields.uint(optional, 2, "optional header magic")
    if magic not in _RVA_COUNT:
        raise fields.error(f"optional header magic {magic:#x} is neither PE32 nor PE32+", optional)
    headers_size = fields.uint(optional + _SIZE_OF_HEADERS, 4, "SizeOfHeaders")
    rva_count = fields.uint(optional + _RVA_COUNT[magic], 4, "NumberOfRvaAndSizes")
    directories = optional + _DIRECTORIES[magic]
    if directories + 8 * rva_count > optional + optional_size:
        raise fields.error(f"{rva_count} data directories do not fit the optional header", directories)
    checksum = optional + _CHECKSUM
    fields.check(0, headers_size, "SizeOfHeaders")

    h = hashlib.sha384()
    h.update(image[:checksum])
    if rva_count > SECURITY_DIRECTORY:
        security = directories + 8 * SECURITY_DIRECTORY
        if security + 8 > headers_size:
            raise fields.error("the certificate directory lies beyond SizeOfHeaders", security)
        h.update(image[checksum + 4 : security])
        h.update(image[security + 8 : headers_size])
        cert_size = fields.uint(security + 4, 4, "certificate table size")
    else:
        if checksum + 4 > headers_size:
            raise fields.error("the CheckSum field lies beyond SizeOfHeaders", checksum)
        h.update(image[checksum + 4 : headers_size])
        cert_size = 0

    hashed = headers_size
    for pointer, size in _sections(fields, optional + optional_size, section_count):
        fields.check(pointer, size, "section raw data")
        h.update(image[pointer : pointer + size])
        hashed += size

    if len(image) > hashed:
        if len(image) < hashed + cert_size:
            raise fields.error(
                f"the file ({len(image)} bytes) is shorter than its sections and certificate table "
                f"({hashed} + {cert_size} bytes)",
                hashed,
            )
        h.update(image[hashed : len(image) - cert_size])
    return h.digest()


def _sections(fields: Fields, table: int, count: int) -> list[tuple[int, int]]:
    """(PointerToRawData, SizeOfRawData) of the sections with raw data, by PointerToRawData."""
    sections = []
    for index in range(count):
        header = table + index * _SECTION_HEADER_SIZE
        size = fields.uint(header + 16, 4, f"section {index} SizeOfRawData")
        pointer = fields.uint(header + 20, 4, f"section {index} PointerToRawData")
        if size:
            sections.append((pointer, size))
    return sorted(sections, key=lambda section: section[0])
