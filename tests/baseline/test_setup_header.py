"""The bzImage setup header as QEMU patches it before the firmware measures the kernel."""

from __future__ import annotations

import struct

import pytest

from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import Kernel
from teeplane.baseline.measure.setup_header import below_4g_memory, qemu_patched_kernel, video_mode

GIB = 1 << 30


def fields(image: bytes) -> dict[str, int]:
    return {
        "type_of_loader": image[0x210],
        "loadflags": image[0x211],
        "ramdisk_image": struct.unpack_from("<I", image, 0x218)[0],
        "ramdisk_size": struct.unpack_from("<I", image, 0x21C)[0],
        "heap_end_ptr": struct.unpack_from("<H", image, 0x224)[0],
        "cmd_line_ptr": struct.unpack_from("<I", image, 0x228)[0],
    }


def test_qemu_writes_loader_heap_and_command_line_fields() -> None:
    kernel = Kernel().build()
    patched = qemu_patched_kernel(kernel, cmdline=b"", initrd_size=None, memory_size=2 * GIB)
    assert fields(patched) == {
        "type_of_loader": 0xB0,
        "loadflags": 0x81,
        "ramdisk_image": 0,
        "ramdisk_size": 0,
        "heap_end_ptr": 0xFE00,
        "cmd_line_ptr": 0x20000,
    }
    differing = [i for i in range(len(kernel)) if kernel[i] != patched[i]]
    assert differing and all(0x210 <= i < 0x22C for i in differing)


@pytest.mark.parametrize(
    ("xloadflags", "memory", "initrd_max"),
    [
        (0x7F, 2 * GIB, 2 * GIB - 0x28000 - 1),  # loadable above 4 GiB: only low memory and ACPI cap it
        (0x3F, 0xA0000000, 0x7FFFFFFF),  # otherwise initrd_addr_max does
        (0x7F, 0xA0000000, 0xA0000000 - 0x28000 - 1),
        (0x7F, 4 * GIB, 0x80000000 - 0x28000 - 1),  # >= 0xB0000000 of RAM: low memory ends at 2 GiB
    ],
)
def test_the_initrd_goes_to_the_top_of_low_memory(xloadflags: int, memory: int, initrd_max: int) -> None:
    kernel = Kernel(xloadflags=xloadflags).build()
    patched = fields(qemu_patched_kernel(kernel, cmdline=b"", initrd_size=0x12345, memory_size=memory))
    assert (patched["ramdisk_image"], patched["ramdisk_size"]) == ((initrd_max - 0x12345) & ~0xFFF, 0x12345)


def test_low_memory_split_of_q35() -> None:
    assert below_4g_memory(2 * GIB) == 2 * GIB
    assert below_4g_memory(0xAFFFFFFF) == 0xAFFFFFFF
    assert below_4g_memory(0xB0000000) == 0x80000000
    assert below_4g_memory(64 * GIB) == 0x80000000


def test_kernels_qemu_cannot_direct_boot_are_refused() -> None:
    image = bytearray(Kernel().build())
    image[0x202:0x206] = b"HdrT"
    with pytest.raises(BuildInputError, match="no 'HdrS'") as caught:
        qemu_patched_kernel(bytes(image), cmdline=b"", initrd_size=None, memory_size=GIB)
    assert caught.value.code == "kernel.unsupported"
    with pytest.raises(BuildInputError, match="not a bzImage loaded high"):
        qemu_patched_kernel(Kernel(protocol=0x0201).build(), cmdline=b"", initrd_size=None, memory_size=GIB)
    with pytest.raises(BuildInputError, match="not a bzImage loaded high"):
        qemu_patched_kernel(Kernel(loadflags=0).build(), cmdline=b"", initrd_size=None, memory_size=GIB)
    with pytest.raises(BuildInputError, match="does not fit below"):
        qemu_patched_kernel(Kernel().build(), cmdline=b"", initrd_size=GIB, memory_size=GIB)
    with pytest.raises(BuildInputError, match="setup header magic"):
        qemu_patched_kernel(b"MZ" + bytes(0x100), cmdline=b"", initrd_size=None, memory_size=GIB)


@pytest.mark.parametrize(
    ("cmdline", "mode"),
    [
        (b"console=hvc0", None),
        (b"quiet vga=791 splash", 791),
        (b"vga=0x317", 0x317),
        (b"vga=0317", 0o317),
        (b"vga=normal", 0xFFFF),
        (b"vga=ext", 0xFFFE),
        (b"vga=ask", 0xFFFD),
        (b"vga=-1", 0xFFFF),
        (b"vga=0x", 0),
        (b"vga=foo", 0),
    ],
)
def test_vga_sets_the_video_mode_as_qemu_reads_it(cmdline: bytes, mode: int | None) -> None:
    assert video_mode(cmdline) == mode
    patched = qemu_patched_kernel(Kernel().build(), cmdline=cmdline, initrd_size=None, memory_size=GIB)
    written = struct.unpack_from("<H", patched, 0x1FA)[0]
    assert written == (mode if mode is not None else struct.unpack_from("<H", Kernel().build(), 0x1FA)[0])
