"""Standard base64 (RFC 4648 §4), strict: canonical padding, no whitespace, no stray characters."""

from __future__ import annotations

import base64
import binascii

from teeplane.baseline.errors import Code, LogInputError


def encode(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def decode(text: str, code: Code, what: str) -> bytes:
    """Decode canonical standard base64, or raise `LogInputError(code)` naming `what`."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise LogInputError(code, f"{what} is not base64") from None
    if encode(data) != text:
        raise LogInputError(code, f"{what} is not canonical base64")
    return data
