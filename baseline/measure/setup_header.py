"""The Linux setup header of a bzImage as QEMU patches it for a direct kernel boot.

QEMU (hw/i386/x86.c, x86_load_linux) writes boot-loader fields into the kernel's setup header
before handing the kernel to the firmware through fw_cfg; TDVF then loads and measures that
patched image, so the Authenticode digest in RTMR1 depends on them. QEMU 10 and later stopped
patching the image the firmware measures (the recipe's QEMU version family decides). The fields,
for a boot protocol >= 2.02 kernel loaded high (every EFI-stub bzImage):

* 0x210 type_of_loader = 0xB0 (QEMU);
* 0x211 loadflags |= CAN_USE_HEAP (0x80); 0x224 heap_end_ptr (u16) = cmdline_addr - real_addr - 0x200,
  with real_addr 0x10000 and cmdline_addr 0x20000;
* 0x228 cmd_line_ptr (u32) = cmdline_addr;
* with "vga=" in the command line: 0x1FA vid_mode (u16) = 0xFFFF for "normal", 0xFFFE "ext",
  0xFFFD "ask", else the number that follows, as C's strtol(..., 0) reads it (0 if none);
* with an initrd: 0x218 ramdisk_image = (initrd_max - initrd_size) & ~4095 and 0x21C ramdisk_size,
  where initrd_max is 0xFFFFFFFF if protocol >= 2.12 and XLF_CAN_BE_LOADED_ABOVE_4G (xloadflags
  0x236 bit 6), else initrd_addr_max (0x22C) for protocol >= 2.03 (0x37FFFFFF before), clamped to
  below_4g_mem_size - acpi_data_size - 1. On q35 below_4g_mem_size is the memory size, capped at
  0xB0000000 (or at 0x80000000 once the memory reaches 0xB0000000); acpi_data_size is 0x28000.
"""

from __future__ import annotations

import re
import struct

from teeplane.baseline.errors import Code
from teeplane.baseline.measure.binary import Fields

HDRS_MAGIC = b"HdrS"
QEMU_LOADER_TYPE = 0xB0
CAN_USE_HEAP = 0x80
LOADED_HIGH = 0x01
XLF_CAN_BE_LOADED_ABOVE_4G = 0x40
REAL_ADDR = 0x10000
CMDLINE_ADDR = 0x20000
#: q35: 128 KiB of ACPI tables plus 32 KiB of slack, below the top of low memory.
ACPI_DATA_SIZE = 0x28000
_LOWMEM_SPLIT = 0xB0000000
_LOWMEM_CAP = 0x80000000
_DEFAULT_INITRD_MAX = 0x37FFFFFF
_VIDEO_MODES = {b"normal": 0xFFFF, b"ext": 0xFFFE, b"ask": 0xFFFD}
#: What strtol(s, NULL, 0) consumes: blanks, a sign, then hex (0x...), octal (0...) or decimal digits.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def below_4g_memory(memory_size: int) -> int:
    """Guest RAM below 4 GiB on QEMU's q35 machine for `memory_size` bytes of RAM."""
    lowmem = _LOWMEM_CAP if memory_size >= _LOWMEM_SPLIT else _LOWMEM_SPLIT
    return min(memory_size, lowmem)


def qemu_patched_kernel(kernel: bytes, *, cmdline: bytes, initrd_size: int | None, memory_size: int) -> bytes:
    """`kernel` with the setup-header fields QEMU writes (see the module docstring)."""
    fields = Fields(kernel, Code.KERNEL_UNSUPPORTED, "kernel")
    if fields.bytes(0x202, 4, "setup header magic") != HDRS_MAGIC:
        raise fields.error("no 'HdrS' Linux setup header: QEMU can only direct-boot a bzImage", 0x202)
    protocol = fields.uint(0x206, 2, "boot protocol version")
    loadflags = fields.uint(0x211, 1, "loadflags")
    if protocol < 0x202 or not loadflags & LOADED_HIGH:
        raise fields.error(f"boot protocol {protocol:#x}, loadflags {loadflags:#x}: not a bzImage loaded high", 0x206)
    patched = bytearray(kernel)
    patched[0x210] = QEMU_LOADER_TYPE
    patched[0x211] = loadflags | CAN_USE_HEAP
    struct.pack_into("<H", patched, 0x224, CMDLINE_ADDR - REAL_ADDR - 0x200)
    struct.pack_into("<I", patched, 0x228, CMDLINE_ADDR)
    mode = video_mode(cmdline)
    if mode is not None:
        struct.pack_into("<H", patched, 0x1FA, mode)
    if initrd_size is not None:
        initrd_max = _initrd_max(fields, protocol, memory_size)
        if initrd_size >= initrd_max:
            raise fields.error(f"the initrd ({initrd_size} bytes) does not fit below {initrd_max:#x}", 0x218)
        struct.pack_into("<II", patched, 0x218, (initrd_max - initrd_size) & ~0xFFF, initrd_size)
    return bytes(patched)


def video_mode(cmdline: bytes) -> int | None:
    """The vid_mode QEMU writes for the first "vga=" in `cmdline`, or None without one."""
    at = cmdline.find(b"vga=")
    if at < 0:
        return None
    value = cmdline[at + 4 :]
    for word, mode in _VIDEO_MODES.items():
        if value.startswith(word):
            return mode
    match = _STRTOL.match(value)
    if match is None:
        return 0
    sign, digits = match[1], match[2]
    if digits[:2] in (b"0x", b"0X") and len(digits) > 2:
        number = int(digits[2:], 16)
    elif digits.startswith(b"0"):
        number = int(digits[1:] or b"0", 8)
    else:
        number = int(digits)
    return (-number if sign == b"-" else number) & 0xFFFF


def _initrd_max(fields: Fields, protocol: int, memory_size: int) -> int:
    if protocol >= 0x20C and fields.uint(0x236, 2, "xloadflags") & XLF_CAN_BE_LOADED_ABOVE_4G:
        initrd_max = 0xFFFFFFFF
    elif protocol >= 0x203:
        initrd_max = fields.uint(0x22C, 4, "initrd_addr_max")
    else:
        initrd_max = _DEFAULT_INITRD_MAX
    below_4g = below_4g_memory(memory_size)
    if initrd_max >= below_4g - ACPI_DATA_SIZE:
        initrd_max = below_4g - ACPI_DATA_SIZE - 1
    return initrd_max
