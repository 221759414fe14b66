"""Benchmark: artifact hashing throughput against `sha384sum`, and the time to measure a recipe, on one core.

Measured in one run:

* `hashing`: SHA-384 of one large file (default 512 MiB, in the page cache) by
  `teeplane.baseline.fetch.digest_file` (hashlib over a memory map) against coreutils'
  `sha384sum` on the same file; best of `--repeat` runs each. The figure is the throughput ratio
  (target >= 0.8).
* `recipe`: `measure_recipe` over a TDX recipe of realistic sizes (a 4 MiB TDVF, a 12 MiB
  kernel, a 64 MiB initrd, initdata, two images), median of `--repeat` runs, with the MRTD
  calculation alone for scale.

Usage: python bench/measure.py [--size-mib 512] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from teeplane.baseline.build import measure_recipe
from teeplane.baseline.fetch import digest_file
from teeplane.baseline.measure.tdvf import PageOrder, tdvf_mrtd
from teeplane.baseline.recipe import load_recipe

_HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(_HERE), str(_HERE.parent / "tests" / "support")]  # the shared helpers, the artifact builders
from loadgen import cpu_model  # noqa: E402

from teeplane.baseline.example import IMAGE, Firmware, Kernel, initdata, oci_layout, recipe_data  # noqa: E402

MIB = 1 << 20


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall times of `repeat` calls of `fn` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def write_large_file(path: Path, size: int) -> None:
    """`size` bytes of incompressible data, written in 16 MiB blocks."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.write(block[: size % len(block)])


def hashing(directory: Path, size: int, repeat: int) -> dict[str, float]:
    """Best-of-`repeat` SHA-384 throughput of digest_file and of sha384sum on one file."""
    path = directory / "large.bin"
    write_large_file(path, size)
    tool = shutil.which("sha384sum")
    assert tool is not None, "sha384sum (coreutils) is needed"
    ours = min(timed(lambda: digest_file(path, ["sha384"]), repeat))
    theirs = min(timed(lambda: subprocess.run([tool, str(path)], check=True, capture_output=True), repeat))
    path.unlink()
    return {
        "file_mib": size / MIB,
        "teeplane_mib_per_s": round(size / MIB / ours, 1),
        "sha384sum_mib_per_s": round(size / MIB / theirs, 1),
        "ratio": round(theirs / ours, 3),
    }


def recipe(directory: Path) -> Path:
    """A TDX recipe over artifacts of realistic sizes."""
    (directory / "OVMF.fd").write_bytes(Firmware(pages=1024).build())
    (directory / "bzImage").write_bytes(Kernel(trailing=os.urandom(12 * MIB)).build())
    write_large_file(directory / "initrd.img", 64 * MIB)
    (directory / "initdata.toml").write_bytes(initdata())
    oci_layout(directory / "app")
    images = [{"ref": IMAGE}, {"name": "registry.example/app2", "oci_layout": {"source": "app"}}]
    data = recipe_data(cmdline="console=hvc0 root=/dev/vda1 rw", images=images)
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(size: int, repeat: int) -> dict[str, object]:
    """Run both benchmarks and return the figures."""
    with tempfile.TemporaryDirectory(prefix="teeplane-bench-") as tmp:
        directory = Path(tmp)
        hashed = hashing(directory, size, repeat)
        path = recipe(directory)
        recipe_times = timed(lambda: measure_recipe(load_recipe(path)), repeat)
        firmware = (directory / "OVMF.fd").read_bytes()
        mrtd_times = timed(lambda: tdvf_mrtd(firmware, PageOrder.SINGLE_PASS), repeat)
    return {
        "machine": {"cpu": cpu_model(), "cores_used": 1, "python": platform.python_version()},
        "hashing": hashed,
        "recipe": {
            "artifacts_mib": {"firmware": 4, "kernel": 12, "initrd": 64},
            "measure_recipe_ms_median": round(statistics.median(recipe_times) * 1e3, 1),
            "mrtd_4mib_ms_median": round(statistics.median(mrtd_times) * 1e3, 1),
            "runs": repeat,
        },
    }


def main() -> int:
    """Pin to one core, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=512, help="size of the file hashed")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    figures = measure(args.size_mib * MIB, args.repeat)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    hashed, measured = figures["hashing"], figures["recipe"]
    assert isinstance(hashed, dict) and isinstance(measured, dict)
    print(f"machine: {figures['machine']}")
    print(
        f"SHA-384 of a {hashed['file_mib']:.0f} MiB file: teeplane {hashed['teeplane_mib_per_s']} MiB/s, "
        f"sha384sum {hashed['sha384sum_mib_per_s']} MiB/s (ratio {hashed['ratio']})"
    )
    print(
        f"measure_recipe (4 MiB TDVF, 12 MiB kernel, 64 MiB initrd): {measured['measure_recipe_ms_median']} ms "
        f"median of {measured['runs']}; MRTD alone {measured['mrtd_4mib_ms_median']} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
