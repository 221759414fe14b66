"""Envelope encryption: round trips, tampering with every field, moving envelopes, wrong KEKs, strict parsing."""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teeplane.errors import InputError, RefusedError, TeeplaneError
from teeplane.tks.envelope import (
    ENVELOPE_INVALID,
    KEY_REF_INVALID,
    MAX_PLAINTEXT_BYTES,
    SECRET_TOO_LARGE,
    Envelope,
    aad_for,
    open_envelope,
    seal,
)
from teeplane.tks.kek import FileKek, KekUnwrapError

KEK = FileKek(bytes(range(32)))
SECRET = b"the key material \x00\xff"


def _refused(exc: pytest.ExceptionInfo[RefusedError]) -> None:
    assert exc.value.code == ENVELOPE_INVALID
    assert SECRET.decode("latin-1") not in str(exc.value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _fields(envelope: Envelope) -> dict[str, str]:
    fields: dict[str, str] = json.loads(envelope.to_bytes())
    return fields


def _encode(fields: dict[str, object]) -> bytes:
    return json.dumps(fields).encode()


def test_round_trip_through_bytes() -> None:
    envelope = seal(SECRET, key_id="payments-db", version=3, kek=KEK)
    data = envelope.to_bytes()
    assert set(json.loads(data)) == {"alg", "kek_id", "wrapped_dek", "nonce", "ciphertext"}
    assert b" " not in data and b"=" not in data
    parsed = Envelope.from_bytes(data)
    assert parsed == envelope
    assert parsed.to_bytes() == data
    assert parsed.kek_id == KEK.kek_id and parsed.alg == "A256GCM"
    assert open_envelope(parsed, key_id="payments-db", version=3, kek=KEK) == SECRET
    assert SECRET not in data


def test_fresh_dek_and_nonce_every_time() -> None:
    first, second = (seal(SECRET, key_id="k", version=1, kek=KEK) for _ in range(2))
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_dek != second.wrapped_dek
    assert KEK.unwrap(first.wrapped_dek, aad_for("k", 1)) != KEK.unwrap(second.wrapped_dek, aad_for("k", 1))


@pytest.mark.parametrize("plaintext", [b"", b"x", os.urandom(MAX_PLAINTEXT_BYTES)], ids=["empty", "one", "largest"])
def test_sizes(plaintext: bytes) -> None:
    envelope = Envelope.from_bytes(seal(plaintext, key_id="k", version=1, kek=KEK).to_bytes())
    assert open_envelope(envelope, key_id="k", version=1, kek=KEK) == plaintext


def test_too_large_secret_is_refused() -> None:
    with pytest.raises(InputError) as exc:
        seal(b"\0" * (MAX_PLAINTEXT_BYTES + 1), key_id="k", version=1, kek=KEK)
    assert exc.value.code == SECRET_TOO_LARGE


def test_aad_names_the_key_version() -> None:
    assert aad_for("payments-db", 12) == b"teeplane-tks\0payments-db\x0012"
    for key_id, version in [("", 1), ("a\0b", 1), ("k", 0), ("k", -1), ("k", True), ("x" * 1025, 1)]:
        with pytest.raises(InputError) as exc:
            aad_for(key_id, version)
        assert exc.value.code == KEY_REF_INVALID


@pytest.mark.parametrize(("key_id", "version"), [("other", 1), ("k", 2), ("k", 11), ("k1", 1)])
def test_moved_to_another_key_or_version(key_id: str, version: int) -> None:
    envelope = seal(SECRET, key_id="k", version=1, kek=KEK)
    with pytest.raises(RefusedError) as exc:
        open_envelope(envelope, key_id=key_id, version=version, kek=KEK)
    _refused(exc)
    assert exc.value.where == f"{key_id}@{version}:wrapped_dek"


def test_spliced_envelopes_do_not_open() -> None:
    one = seal(SECRET, key_id="k", version=1, kek=KEK)
    two = seal(b"other material", key_id="k", version=1, kek=KEK)
    for spliced in (
        dataclasses.replace(one, wrapped_dek=two.wrapped_dek),
        dataclasses.replace(one, ciphertext=two.ciphertext),
        dataclasses.replace(one, nonce=two.nonce),
    ):
        with pytest.raises(RefusedError) as exc:
            open_envelope(spliced, key_id="k", version=1, kek=KEK)
        _refused(exc)
        assert exc.value.where == "k@1:ciphertext"


@pytest.mark.parametrize("field", ["wrapped_dek", "nonce", "ciphertext"])
@pytest.mark.parametrize("position", [0, 5, -17, -1])
def test_tampered_binary_fields(field: str, position: int) -> None:
    envelope = seal(SECRET, key_id="k", version=1, kek=KEK)
    value = bytearray(getattr(envelope, field))
    value[position % len(value)] ^= 0x01  # -17: the last ciphertext byte before the tag
    tampered = Envelope.from_bytes(_encode({**_fields(envelope), field: _b64(bytes(value))}))
    with pytest.raises(RefusedError) as exc:
        open_envelope(tampered, key_id="k", version=1, kek=KEK)
    _refused(exc)
    assert exc.value.where == "k@1:" + ("wrapped_dek" if field == "wrapped_dek" else "ciphertext")


def test_tampered_kek_id_and_wrong_kek() -> None:
    envelope = seal(SECRET, key_id="k", version=1, kek=KEK)
    tampered = Envelope.from_bytes(_encode({**_fields(envelope), "kek_id": "file:0000000000000000"}))
    other = FileKek(os.urandom(32))
    for candidate, kek in [(tampered, KEK), (envelope, other)]:
        with pytest.raises(RefusedError) as exc:
            open_envelope(candidate, key_id="k", version=1, kek=kek)
        _refused(exc)
        assert exc.value.where == "k@1:kek_id"


class _Impostor:
    """A KEK claiming another KEK's id while holding a different key."""

    def __init__(self, kek_id: str) -> None:
        self.kek_id = kek_id
        self._inner = FileKek(os.urandom(32))

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        return self._inner.wrap(dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self._inner.unwrap(wrapped, aad)


class _ShortDek(_Impostor):
    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return b"\0" * 16


def test_wrong_kek_with_the_same_id_is_refused() -> None:
    envelope = seal(SECRET, key_id="k", version=1, kek=KEK)
    for kek in (_Impostor(KEK.kek_id), _ShortDek(KEK.kek_id)):
        with pytest.raises(RefusedError) as exc:
            open_envelope(envelope, key_id="k", version=1, kek=kek)
        _refused(exc)
        assert exc.value.where == "k@1:wrapped_dek"
        assert not isinstance(exc.value, KekUnwrapError)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"alg": "A128GCM"}, "alg"),
        ({"alg": "none"}, "alg"),
        ({"kek_id": ""}, "kek_id"),
        ({"kek_id": "file:\n"}, "kek_id"),
        ({"kek_id": "x" * 257}, "kek_id"),
        ({"nonce": _b64(b"\0" * 11)}, "nonce"),
        ({"nonce": _b64(b"\0" * 16)}, "nonce"),
        ({"ciphertext": _b64(b"\0" * 15)}, "ciphertext"),
        ({"wrapped_dek": ""}, "wrapped_dek"),
        ({"wrapped_dek": _b64(b"\0" * 1025)}, "wrapped_dek"),
        ({"nonce": "AAAAAAAAAAAAAAAA="}, "nonce"),
        ({"nonce": "AAAAAAAAAAAAAAA+"}, "nonce"),
        ({"ciphertext": "A"}, "ciphertext"),
        ({"nonce": 12}, "nonce"),
        ({"kek_id": None}, "kek_id"),
        ({"ciphertext": ["AAAA"]}, "ciphertext"),
    ],
)
def test_malformed_fields_are_typed(change: dict[str, object], where: str) -> None:
    fields: dict[str, object] = {**_fields(seal(SECRET, key_id="k", version=1, kek=KEK)), **change}
    with pytest.raises(InputError) as exc:
        Envelope.from_bytes(_encode(fields))
    assert exc.value.code == ENVELOPE_INVALID
    assert exc.value.where == where


def test_non_canonical_base64_is_refused() -> None:
    envelope = seal(b"x", key_id="k", version=1, kek=KEK)
    # 17 bytes of ciphertext: the last of 23 base64url characters carries 2 spare bits, which must be 0
    ciphertext = _fields(envelope)["ciphertext"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = ciphertext[:-1] + alphabet[alphabet.index(ciphertext[-1]) + 1]
    assert base64.urlsafe_b64decode(sibling + "=") == envelope.ciphertext
    with pytest.raises(InputError) as exc:
        Envelope.from_bytes(_encode({**_fields(envelope), "ciphertext": sibling}))
    assert exc.value.where == "ciphertext"
    assert "canonical" in exc.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"null",
        b'"envelope"',
        b"{",
        b"\xff\xfe{}",
        b"{}",
        b"[" * 100_000,
        b"1" * 5000,
        b" " * (1024 * 1024 + 1),
    ],
)
def test_unreadable_bytes_are_typed(data: bytes) -> None:
    with pytest.raises(InputError) as exc:
        Envelope.from_bytes(data)
    assert exc.value.code == ENVELOPE_INVALID


def test_missing_unknown_and_duplicate_members() -> None:
    fields = _fields(seal(SECRET, key_id="k", version=1, kek=KEK))
    without = {k: v for k, v in fields.items() if k != "nonce"}
    for bad in (_encode(without), _encode({**fields, "v": "1"})):
        with pytest.raises(InputError) as exc:
            Envelope.from_bytes(bad)
        assert exc.value.code == ENVELOPE_INVALID
    with pytest.raises(InputError):
        Envelope.from_bytes(_encode(fields)[:-1] + b', "alg": "A256GCM"}')


def test_every_bit_flip_of_the_serialized_envelope_is_refused() -> None:
    data = seal(SECRET, key_id="k", version=1, kek=KEK).to_bytes()
    for position in range(len(data)):
        flipped = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]
        with pytest.raises(TeeplaneError) as exc:
            open_envelope(Envelope.from_bytes(flipped), key_id="k", version=1, kek=KEK)
        assert exc.value.code == ENVELOPE_INVALID, position


def test_repr_hides_ciphertext_and_wrapped_dek() -> None:
    envelope = seal(SECRET, key_id="k", version=1, kek=KEK)
    text = repr(envelope) + str(envelope)
    assert text == repr(envelope) * 2
    assert f"ciphertext=<{len(SECRET) + 16} bytes>" in text
    assert f"wrapped_dek=<{len(envelope.wrapped_dek)} bytes>" in text
    assert KEK.kek_id in text
    for field in ("wrapped_dek", "nonce", "ciphertext"):
        value = getattr(envelope, field)
        for encoding in (_b64(value)[:8], value.hex()[:8], repr(value)[2:10]):
            assert encoding not in text


@given(st.binary(max_size=2048))
def test_from_bytes_on_random_bytes_raises_only_the_typed_error(data: bytes) -> None:
    try:
        Envelope.from_bytes(data)
    except InputError as exc:
        assert exc.code == ENVELOPE_INVALID


_B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=80)
_VALUE = st.one_of(_B64URL, st.text(max_size=20), st.integers(), st.none(), st.lists(st.integers(), max_size=2))


@given(
    st.dictionaries(
        st.sampled_from(["alg", "kek_id", "wrapped_dek", "nonce", "ciphertext", "other"]),
        _VALUE,
    )
)
def test_from_bytes_on_envelope_shaped_json_raises_only_the_typed_error(fields: dict[str, object]) -> None:
    try:
        envelope = Envelope.from_bytes(_encode(fields))
    except InputError as exc:
        assert exc.code == ENVELOPE_INVALID
        return
    with pytest.raises(TeeplaneError) as opened:
        open_envelope(envelope, key_id="k", version=1, kek=KEK)
    assert opened.value.code == ENVELOPE_INVALID
