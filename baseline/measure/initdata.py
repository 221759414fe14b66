"""The digest of a Confidential Containers initdata document: MRCONFIGID (TDX) and HOST_DATA (SEV-SNP).

Initdata (confidential-containers/trustee kbs/docs/initdata.md, as the Kata runtime computes it) is
a TOML document with `version = "0.1.0"`, `algorithm` (sha256, sha384 or sha512) and a `[data]`
table of strings. Its digest is the algorithm over the document's exact bytes, fitted to the
register: truncated, or padded with zero bytes, to 48 bytes for MRCONFIGID and 32 for HOST_DATA.
"""

from __future__ import annotations

import hashlib
import tomllib

from teeplane.baseline.errors import BuildInputError, Code

VERSION = "0.1.0"
ALGORITHMS = ("sha256", "sha384", "sha512")
MRCONFIGID_SIZE = 48
HOST_DATA_SIZE = 32
_KEYS = {"version", "algorithm", "data"}


def initdata_digest(document: bytes) -> bytes:
    """The digest of an initdata document under its declared algorithm, after checking the document."""
    try:
        parsed = tomllib.loads(document.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise _malformed(f"not a TOML document: {e}", "initdata") from None
    if set(parsed) != _KEYS:
        missing, extra = sorted(_KEYS - set(parsed)), sorted(set(parsed) - _KEYS)
        raise _malformed(f"initdata has exactly version, algorithm and data; missing {missing}, unknown {extra}")
    if parsed["version"] != VERSION:
        raise _malformed(f"initdata version {parsed['version']!r} is not {VERSION!r}", "initdata.version")
    algorithm = parsed["algorithm"]
    if algorithm not in ALGORITHMS:
        supported = ", ".join(ALGORITHMS)
        raise _malformed(f"initdata algorithm {algorithm!r} is not one of {supported}", "initdata.algorithm")
    data = parsed["data"]
    if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
        raise _malformed("initdata [data] must be a table of strings", "initdata.data")
    return hashlib.new(algorithm, document).digest()


def fit(digest: bytes, size: int) -> bytes:
    """`digest` truncated or zero-padded to `size` bytes, as the runtime fits it to a register."""
    return digest[:size].ljust(size, b"\0")


def _malformed(message: str, where: str = "initdata") -> BuildInputError:
    return BuildInputError(Code.INITDATA_MALFORMED, message, where=where)
