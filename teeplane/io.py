"""Reading user-named files with typed errors instead of tracebacks."""

from __future__ import annotations

from pathlib import Path

from teeplane.errors import InputError

#: Largest file the CLI reads as evidence or collateral.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def read_file(path: Path, what: str) -> bytes:
    """The bytes of `path`, or InputError(`input.unreadable`) naming the file and the reason."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError("input.unreadable", f"{what} {path} is {size} bytes, over the 16 MiB limit")
        return path.read_bytes()
    except OSError as exc:
        raise InputError("input.unreadable", f"cannot read {what} {path}: {exc.strerror}", where=str(path)) from None
