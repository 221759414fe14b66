"""Reading and digesting artifacts: plain paths, file:// URLs and http(s):// URLs.

Files are hashed through a memory map (one pass of hashlib over the mapped file, no copies), so
digesting runs at the speed of the hash; other files (pipes, empty files) are read in 1 MiB
blocks. URLs are fetched with httpx into memory.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import httpx

from teeplane.baseline.errors import BuildInputError, Code

BLOCK_SIZE = 1 << 20
HTTP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Digested:
    """An input read from `uri`: its digests by algorithm, size, and its bytes when asked for."""

    uri: str
    digests: dict[str, bytes]
    size: int
    data: bytes | None = None


def local_path(uri: str) -> Path | None:
    """The file a plain path or file:// URL names; None for an http(s) URL."""
    if uri.startswith(("http://", "https://")):
        return None
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise BuildInputError(Code.ARTIFACT_UNREADABLE, f"{uri}: file URLs on other hosts are not read")
        return Path(unquote(parts.path))
    return Path(uri)


def digest_input(uri: str, algorithms: Iterable[str], *, keep: bool = False, where: str) -> Digested:
    """Digest the input at `uri` with each of `algorithms`; keep its bytes if `keep`."""
    names = sorted(set(algorithms))
    path = local_path(uri)
    try:
        if path is None:
            data = _download(uri)
            return Digested(uri, {name: hashlib.new(name, data).digest() for name in names}, len(data), data)
        if keep:
            data = path.read_bytes()
            return Digested(uri, {name: hashlib.new(name, data).digest() for name in names}, len(data), data)
        digests, size = digest_file(path, names)
        return Digested(uri, digests, size)
    except OSError as e:
        message = f"{uri} cannot be read: {e.strerror or e}"
        raise BuildInputError(Code.ARTIFACT_UNREADABLE, message, where=where) from None
    except httpx.HTTPError as e:
        raise BuildInputError(Code.ARTIFACT_UNREADABLE, f"{uri} cannot be fetched: {e}", where=where) from None


def digest_file(path: Path, algorithms: Iterable[str]) -> tuple[dict[str, bytes], int]:
    """The digests of the file at `path` and its size, hashing a memory map where possible."""
    hashes = [hashlib.new(name) for name in algorithms]
    with path.open("rb") as f:
        size = _feed(f.fileno(), hashes) if path.is_file() and path.stat().st_size else _feed_blocks(f, hashes)
    return {h.name: h.digest() for h in hashes}, size


def _feed(fd: int, hashes: list[hashlib._Hash]) -> int:
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped:
        mapped.madvise(mmap.MADV_SEQUENTIAL)
        for h in hashes:
            h.update(mapped)
        return len(mapped)


def _feed_blocks(f: BinaryIO, hashes: list[hashlib._Hash]) -> int:
    size = 0
    while block := f.read(BLOCK_SIZE):
        size += len(block)
        for h in hashes:
            h.update(block)
    return size


def _download(url: str) -> bytes:
    response = httpx.get(url, follow_redirects=True, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.content
