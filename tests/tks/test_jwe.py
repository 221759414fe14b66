"""Released keys wrapped to the TEE key: joserfc round trips, independent decryption, refused keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from joserfc import jwe
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.registry import HeaderParameter

from teeplane.errors import InputError
from teeplane.tks.jwe import open_for_tee, wrap_for_tee
from teeplane.tks.models import MAX_SECRET_BYTES
from teeplane.tks.release import ReleaseRefused

SECRET = bytes(range(32))
CURVES = ["P-256", "P-384", "P-521"]
RSA_TEE = RSAKey.generate_key(2048)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(_b64(token.split(".")[0]))
    return header


def _wrap(tee_jwk: dict[str, Any], secret: bytes = SECRET) -> str:
    return wrap_for_tee(secret, tee_jwk, key_id="ledger-db", version=2)


def _content(token: str, cek: bytes) -> bytes:
    """A256GCM content decryption, the protected header as AAD (RFC 7516, section 5.2)."""
    protected, _, iv, ciphertext, tag = token.split(".")
    return AESGCM(cek).decrypt(_b64(iv), _b64(ciphertext) + _b64(tag), protected.encode())


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _decrypt_ecdh_es_a256kw(token: str, private: ec.EllipticCurvePrivateKey) -> bytes:
    """ECDH-ES+A256KW done by hand with `cryptography` (RFC 7518, sections 4.6 and 4.4)."""
    header = _header(token)
    epk = header["epk"]
    peer = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64(epk["x"]), "big"), int.from_bytes(_b64(epk["y"]), "big"), private.curve
    ).public_key()
    other_info = (
        _length_prefixed(b"ECDH-ES+A256KW")
        + _length_prefixed(_b64(header.get("apu", "")))
        + _length_prefixed(_b64(header.get("apv", "")))
        + (256).to_bytes(4, "big")
    )
    kek = ConcatKDFHash(hashes.SHA256(), 32, other_info).derive(private.exchange(ec.ECDH(), peer))
    return _content(token, aes_key_unwrap(kek, _b64(token.split(".")[1])))


def _decrypt_rsa_oaep_256(token: str, private: rsa.RSAPrivateKey) -> bytes:
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return _content(token, private.decrypt(_b64(token.split(".")[1]), oaep))


def _jwe_invalid(token: str, key: Any) -> None:
    with pytest.raises(InputError) as caught:
        open_for_tee(token, key)
    assert caught.value.code == "release.jwe_invalid"


# EC


@pytest.mark.parametrize("crv", CURVES)
def test_ec_header(crv: str) -> None:
    tee = ECKey.generate_key(crv)
    header = _header(_wrap(tee.as_dict(private=False)))
    assert header.keys() == {"alg", "enc", "cty", "teeplane.key", "epk"}
    assert (header["alg"], header["enc"], header["cty"]) == ("ECDH-ES+A256KW", "A256GCM", "application/octet-stream")
    assert header["teeplane.key"] == {"id": "ledger-db", "version": 2}
    assert header["epk"]["crv"] == crv and "d" not in header["epk"]


@pytest.mark.parametrize("crv", CURVES)
def test_ec_opens_only_with_the_tee_private_key(crv: str) -> None:
    tee = ECKey.generate_key(crv)
    token = _wrap(tee.as_dict(private=False))
    assert open_for_tee(token, tee) == SECRET
    assert open_for_tee(token, tee.as_dict(private=True)) == SECRET
    _jwe_invalid(token, ECKey.generate_key(crv))
    _jwe_invalid(token, tee.as_dict(private=False))
    _jwe_invalid(token, RSA_TEE)


@pytest.mark.parametrize("crv", CURVES)
def test_ec_independent_decryption(crv: str) -> None:
    tee = ECKey.generate_key(crv)
    token = _wrap(tee.as_dict(private=False))
    private = tee.private_key
    assert private is not None
    assert _decrypt_ecdh_es_a256kw(token, private) == SECRET
    other = ECKey.generate_key(crv).private_key
    assert other is not None
    with pytest.raises(InvalidUnwrap):  # the wrong key derives another KEK
        _decrypt_ecdh_es_a256kw(token, other)


def test_every_wrap_uses_a_fresh_ephemeral_key() -> None:
    tee = ECKey.generate_key("P-256").as_dict(private=False)
    assert _header(_wrap(tee))["epk"] != _header(_wrap(tee))["epk"]


# RSA


def test_rsa_header_and_round_trip() -> None:
    token = _wrap(RSA_TEE.as_dict(private=False))
    header = _header(token)
    assert header == {
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "cty": "application/octet-stream",
        "teeplane.key": {"id": "ledger-db", "version": 2},
    }
    assert open_for_tee(token, RSA_TEE) == SECRET
    _jwe_invalid(token, RSAKey.generate_key(2048))


def test_rsa_independent_decryption() -> None:
    token = _wrap(RSA_TEE.as_dict(private=False))
    private = RSA_TEE.private_key
    assert private is not None
    assert _decrypt_rsa_oaep_256(token, private) == SECRET
    other = RSAKey.generate_key(2048).private_key
    assert other is not None
    with pytest.raises(ValueError):
        _decrypt_rsa_oaep_256(token, other)


def _synthetic_rsa(bits: int) -> dict[str, Any]:
    """A public RSA JWK with an odd modulus of exactly `bits` bits (no private key needed to encrypt)."""
    n = (1 << (bits - 1)) | 1
    return {"kty": "RSA", "n": _b64e(n.to_bytes((bits + 7) // 8, "big")), "e": "AQAB"}


@pytest.mark.parametrize("bits", [2048, 4096])
def test_rsa_sizes_accepted(bits: int) -> None:
    assert _header(_wrap(_synthetic_rsa(bits)))["alg"] == "RSA-OAEP-256"


# tampering and other algorithms


def test_the_header_is_authenticated() -> None:
    tee = ECKey.generate_key("P-256")
    protected, *rest = _wrap(tee.as_dict(private=False)).split(".")
    header = json.loads(_b64(protected))
    header["teeplane.key"]["version"] = 1
    _jwe_invalid(".".join([_b64e(json.dumps(header).encode()), *rest]), tee)


def test_other_algorithms_are_not_opened() -> None:
    tee = ECKey.generate_key("P-256")
    header = {"alg": "ECDH-ES", "enc": "A256GCM", "teeplane.key": {"id": "ledger-db", "version": 2}}
    registry = jwe.JWERegistry(
        header_registry={"teeplane.key": HeaderParameter("key", "jwk")}, algorithms=["ECDH-ES", "A256GCM"]
    )
    direct = jwe.encrypt_compact(header, SECRET, ECKey.import_key(tee.public_key), registry=registry)
    _jwe_invalid(direct, tee)


def test_a_jwe_without_the_key_header_is_not_opened() -> None:
    tee = ECKey.generate_key("P-256")
    plain = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM"},
        SECRET,
        ECKey.import_key(tee.public_key),
        algorithms=["ECDH-ES+A256KW", "A256GCM"],
    )
    _jwe_invalid(plain, tee)


@pytest.mark.parametrize("token", ["", "a.b.c.d.e", "not a jwe", "." * 4])
def test_garbage_is_not_opened(token: str) -> None:
    _jwe_invalid(token, ECKey.generate_key("P-256"))


def test_the_largest_secret() -> None:
    tee = ECKey.generate_key("P-384")
    secret = bytes(range(256)) * (MAX_SECRET_BYTES // 256)
    assert open_for_tee(_wrap(tee.as_dict(private=False), secret), tee) == secret


# TEE keys that are refused


def _ec(crv: str = "P-256", **members: Any) -> dict[str, Any]:
    return ECKey.generate_key(crv).as_dict(private=False) | members


def _swap_xy(jwk: dict[str, Any]) -> dict[str, Any]:
    return jwk | {"x": jwk["y"], "y": jwk["x"]}


def _small_rsa() -> dict[str, Any]:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    return {"kty": "RSA", "n": _b64e(numbers.n.to_bytes(128, "big")), "e": "AQAB"}


@pytest.mark.parametrize(
    "tee_jwk",
    [
        pytest.param(OctKey.generate_key(256).as_dict(), id="symmetric"),
        pytest.param(ECKey.generate_key("P-256").as_dict(private=True), id="ec-private"),
        pytest.param(RSA_TEE.as_dict(private=True), id="rsa-private"),
        pytest.param(_small_rsa(), id="rsa-1024"),
        pytest.param(_synthetic_rsa(2047), id="rsa-2047"),
        pytest.param(_synthetic_rsa(4097), id="rsa-4097"),
        pytest.param(_synthetic_rsa(2048) | {"e": "Ag"}, id="rsa-even-exponent"),
        pytest.param(_ec("secp256k1"), id="secp256k1"),
        pytest.param(_ec() | {"crv": "P-224"}, id="unknown-curve"),
        pytest.param(OKPKey.generate_key("X25519").as_dict(private=False), id="x25519"),
        pytest.param(_ec(use="sig"), id="signing-key"),
        pytest.param(_ec(alg="ECDH-ES"), id="other-alg"),
        pytest.param(RSA_TEE.as_dict(private=False) | {"alg": "RSA-OAEP"}, id="rsa-oaep-sha1"),
        pytest.param(_swap_xy(_ec()), id="point-off-curve"),
        pytest.param(_ec(x="AAAA"), id="short-coordinate"),
        pytest.param({k: v for k, v in _ec().items() if k != "y"}, id="no-y"),
        pytest.param(_ec(x=5), id="coordinate-not-a-string"),
        pytest.param({"kty": "RSA", "n": "", "e": "AQAB"}, id="empty-modulus"),
        pytest.param({"crv": "P-256"}, id="no-kty"),
        pytest.param(["EC"], id="not-an-object"),
    ],
)
def test_unsupported_tee_keys(tee_jwk: Any) -> None:
    with pytest.raises(ReleaseRefused) as caught:
        _wrap(tee_jwk)
    assert (caught.value.code, caught.value.where) == ("release.tee_key_unsupported", "cnf.jwk")


def test_a_key_meant_for_encryption_is_accepted() -> None:
    tee = ECKey.generate_key("P-256")
    token = _wrap(tee.as_dict(private=False) | {"use": "enc", "alg": "ECDH-ES+A256KW", "kid": "tee-1"})
    assert open_for_tee(token, tee) == SECRET
