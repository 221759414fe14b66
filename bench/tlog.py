"""Benchmark: the baseline transparency log (`TileLog`) on local disk, on one core.

Measured in one run, with 300-byte entries:

* `append`: entries/s and commit latency for batches of 1 to 1,024 entries, each batch one
  `append` call (entry bundles and tiles written and fsynced, then the signed checkpoint replaced
  atomically), each size into a fresh log;
* `build`: a log of `--entries` entries (default 1,000,000) built once, in batches of 4,096, into
  a temporary directory (`--dir` chooses where): time and entries/s, then the time to reopen it
  (checkpoint signature, partial tiles checked against the root);
* `inclusion proof` at that size for random entries: hot (every tile already in the LRU cache),
  steady (the default 1,024-tile cache under random reads) and cold (cache emptied before each
  proof, so every tile on the path is read from the file system and checked against the tile
  above), then the time to verify one, and to write and verify a c2sp.org/tlog-proof file;
* `consistency proof` between random sizes.

Usage: python bench/tlog.py [--entries 1000000] [--proofs 2000] [--seconds 3] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from teeplane.baseline.tlog import merkle, proof
from teeplane.baseline.tlog.note import Signer
from teeplane.baseline.tlog.storage import TileLog

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared helpers beside this file
from loadgen import cpu_model

ORIGIN = "bench.teeplane.example/tlog"
ENTRY_SIZE = 300
APPEND_BATCHES = (1, 16, 64, 256, 1024)
BUILD_BATCH = 4096


def entries(start: int, count: int) -> list[bytes]:
    """`count` distinct entries of ENTRY_SIZE bytes from index `start`."""
    pad = b"x" * (ENTRY_SIZE - 8)
    return [i.to_bytes(8, "big") + pad for i in range(start, start + count)]


def summary(samples: list[float]) -> dict[str, float]:
    """p50, p99, mean and max in milliseconds."""
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1e3, 4),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 4),
        "max_ms": round(ordered[-1] * 1e3, 4),
        "runs": len(ordered),
    }


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    """The duration of each of `runs` calls."""
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


@contextmanager
def fresh_log(parent: Path, signer: Signer, name: str, cache_tiles: int = 1024) -> Iterator[TileLog]:
    with TileLog.create(parent / name, signer, cache_tiles=cache_tiles) as log:
        yield log


def measure_appends(parent: Path, signer: Signer, seconds: float) -> dict[str, object]:
    """Entries/s and commit latency per batch size, each for about `seconds` (at least 5 batches)."""
    out: dict[str, object] = {}
    for batch in APPEND_BATCHES:
        with fresh_log(parent, signer, f"append-{batch}") as log:
            latencies: list[float] = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline or len(latencies) < 5:
                items = entries(log.size, batch)
                start = time.perf_counter()
                log.append(items)
                latencies.append(time.perf_counter() - start)
            out[str(batch)] = {"entries_per_s": round(batch * len(latencies) / sum(latencies)), **summary(latencies)}
    return out


def measure_build(parent: Path, signer: Signer, count: int) -> tuple[Path, dict[str, object]]:
    """Build the big log; its directory and figures."""
    root = parent / "big"
    start = time.perf_counter()
    with TileLog.create(root, signer) as log:
        while log.size < count:
            log.append(entries(log.size, min(BUILD_BATCH, count - log.size)))
    elapsed = time.perf_counter() - start
    files = [p for p in root.rglob("*") if p.is_file()]
    opening = timed(lambda: TileLog.open(root, signer).close(), 20)
    return root, {
        "entries": count,
        "seconds": round(elapsed, 2),
        "entries_per_s": round(count / elapsed),
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "open": summary(opening),
    }


def measure_proofs(root: Path, signer: Signer, runs: int) -> dict[str, object]:
    """Inclusion and consistency proof timings on the big log."""
    rng = random.Random(1)
    verifier = signer.verifier
    with TileLog.open(root, signer, cache_tiles=8192) as log:
        size = log.size
        for tile_start in range(0, size, 256):  # load every tile: the hot cache
            log.inclusion_proof(tile_start)
        hot = timed(lambda: log.inclusion_proof(rng.randrange(size)), runs)
        index = rng.randrange(size)
        path, leaf = log.inclusion_proof(index), merkle.leaf_hash(log.entry(index))
        verify = timed(lambda: merkle.verify_inclusion(index, size, leaf, path, log.root_hash), runs)
        proof_file = timed(lambda: log.tlog_proof(rng.randrange(size)), runs)
        data, entry = log.tlog_proof(index), log.entry(index)
        proof_verify = timed(lambda: proof.verify_proof(data, entry, ORIGIN, [verifier]), runs)

        def consistency() -> None:
            size1 = rng.randrange(1, size)
            log.consistency_proof(size1, rng.randrange(size1, size + 1))

        consistency_times = timed(consistency, runs)
    with TileLog.open(root, signer) as log:
        for _ in range(runs):  # reach the steady state of the default cache
            log.inclusion_proof(rng.randrange(size))
        steady = timed(lambda: log.inclusion_proof(rng.randrange(size)), runs)
    with TileLog.open(root, signer) as log:

        def cold_proof() -> None:
            log._cache.clear()
            log.inclusion_proof(rng.randrange(size))

        cold = timed(cold_proof, runs)
    return {
        "size": size,
        "inclusion_hot": summary(hot),
        "inclusion_steady_default_cache": summary(steady),
        "inclusion_cold": summary(cold),
        "inclusion_verify": summary(verify),
        "tlog_proof_write": summary(proof_file),
        "tlog_proof_verify": summary(proof_verify),
        "consistency": summary(consistency_times),
    }


def main() -> int:
    """Pin to one core, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the log the proofs are timed on")
    parser.add_argument("--proofs", type=int, default=2000, help="proofs timed per figure")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per append batch size")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary logs go (default: $TMPDIR)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    signer = Signer.generate(ORIGIN)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="tlog-bench-") as tmp:
        parent = Path(tmp)
        appends = measure_appends(parent, signer, args.seconds)
        root, build = measure_build(parent, signer, args.entries)
        proofs = measure_proofs(root, signer, args.proofs)
    figures = {
        "machine": {"cpu": cpu_model(), "cores_used": 1, "python": platform.python_version()},
        "entry_bytes": ENTRY_SIZE,
        "append": appends,
        "build": build,
        "proofs": proofs,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"machine: {figures['machine']}, entries of {ENTRY_SIZE} bytes")
    for batch, row in appends.items():
        assert isinstance(row, dict)
        print(
            f"append, batches of {batch:>5}: {row['entries_per_s']:>8} entries/s, "
            f"commit p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms"
        )
    opening = build["open"]
    assert isinstance(opening, dict)
    print(
        f"build {build['entries']:,} entries: {build['seconds']} s ({build['entries_per_s']} entries/s), "
        f"{build['files']} files, {build['bytes']:,} bytes; reopen p50 {opening['p50_ms']} ms"
    )
    for name in ("inclusion_hot", "inclusion_steady_default_cache", "inclusion_cold", "inclusion_verify",
                 "tlog_proof_write", "tlog_proof_verify", "consistency"):  # fmt: skip
        row = proofs[name]
        assert isinstance(row, dict)
        print(f"{name:<32} p50 {row['p50_ms']:>8} ms  p99 {row['p99_ms']:>8} ms  mean {row['mean_ms']:>8} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
