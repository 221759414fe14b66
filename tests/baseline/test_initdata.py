"""Initdata digests: MRCONFIGID and HOST_DATA as the Kata runtime fits them."""

from __future__ import annotations

import hashlib

import pytest

from teeplane.baseline.errors import BuildInputError
from teeplane.baseline.example import initdata
from teeplane.baseline.measure.initdata import HOST_DATA_SIZE, MRCONFIGID_SIZE, fit, initdata_digest


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_the_digest_is_the_declared_algorithm_over_the_exact_bytes(algorithm: str) -> None:
    document = initdata().replace(b'"sha384"', f'"{algorithm}"'.encode())
    digest = hashlib.new(algorithm, document).digest()
    assert initdata_digest(document) == digest
    assert fit(digest, MRCONFIGID_SIZE) == digest[:48].ljust(48, b"\0")
    assert fit(digest, HOST_DATA_SIZE) == digest[:32]


def test_sha256_is_zero_padded_into_mrconfigid() -> None:
    assert fit(b"\x01" * 32, MRCONFIGID_SIZE) == b"\x01" * 32 + bytes(16)


@pytest.mark.parametrize(
    ("document", "match", "where"),
    [
        (b"algorithm = ", "not a TOML document", "initdata"),
        (b"\xff\xfe", "not a TOML document", "initdata"),
        (b'algorithm = "sha384"\nversion = "0.1.0"\n', "missing \\['data'\\]", "initdata"),
        (b'algorithm = "sha384"\nversion = "0.1.0"\nextra = 1\n[data]\n', "unknown \\['extra'\\]", "initdata"),
        (b'algorithm = "md5"\nversion = "0.1.0"\n[data]\n', "'md5' is not one of", "initdata.algorithm"),
        (b'algorithm = "sha384"\nversion = "0.2.0"\n[data]\n', "version '0.2.0'", "initdata.version"),
        (b'algorithm = "sha384"\nversion = "0.1.0"\n[data]\nkey = 1\n', "table of strings", "initdata.data"),
    ],
)
def test_malformed_initdata(document: bytes, match: str, where: str) -> None:
    with pytest.raises(BuildInputError, match=match) as caught:
        initdata_digest(document)
    assert (caught.value.code, caught.value.where) == ("initdata.malformed", where)
