"""DSSE envelopes and signing keys: both key types sign and verify; every tampering has its code."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785
from baseline_testing import document
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, NoEncryption, PrivateFormat
from securesystemslib.signer import CryptoSigner

from teeplane.baseline import dsse
from teeplane.baseline.document import PAYLOAD_TYPE
from teeplane.baseline.errors import BaselineInputError, BaselineRefusedError, Code
from teeplane.baseline.keys import (
    KeyType,
    generate_signer,
    load_log_signer,
    load_public_key,
    load_signer,
    private_pem,
    public_pem,
)
from teeplane.errors import InputError

PAYLOAD = document().payload


@pytest.fixture(params=list(KeyType), ids=str)
def signer(request: pytest.FixtureRequest) -> CryptoSigner:
    key_type: KeyType = request.param
    return generate_signer(key_type)


def test_both_key_types_sign_and_verify(signer: CryptoSigner) -> None:
    envelope = dsse.sign(PAYLOAD, PAYLOAD_TYPE, [signer])
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope.payload) == PAYLOAD
    assert [s.keyid for s in envelope.signatures] == [signer.public_key.keyid]
    verified = dsse.verify(envelope, [signer.public_key], PAYLOAD_TYPE)
    assert (verified.payload, verified.signers) == (PAYLOAD, (signer.public_key.keyid,))
    # the JSON form is DSSE's, and parses back to the same envelope
    data = envelope.model_dump(mode="json")
    assert set(data) == {"payloadType", "payload", "signatures"}
    assert dsse.parse_envelope(json.loads(json.dumps(data))) == envelope
    assert envelope.canonical() == rfc8785.dumps(data)


def test_keys_round_trip_through_pem_files(signer: CryptoSigner) -> None:
    assert private_pem(signer).startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem(signer).startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_signer(private_pem(signer)).public_key == signer.public_key
    assert load_public_key(public_pem(signer)) == signer.public_key
    assert load_public_key(private_pem(signer)) == signer.public_key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip_payload_byte(e: dict[str, Any]) -> None:
    payload = bytearray(base64.b64decode(e["payload"]))
    payload[len(payload) // 2] ^= 0x01
    e["payload"] = _b64(bytes(payload))


def _flip_signature_byte(e: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(e["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    e["signatures"][0]["sig"] = _b64(bytes(sig))


def _change_register(e: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(e["payload"]))
    statement["predicate"]["measurements"]["rtmrs"]["rtmr1"] = "ff" * 48
    (subject,) = [s for s in statement["subject"] if s["name"] == "measurement/rtmr1"]
    subject["digest"]["sha384"] = "ff" * 48
    e["payload"] = _b64(rfc8785.dumps(statement))


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], Code]] = {
    "payload byte": (_flip_payload_byte, Code.DSSE_SIGNATURE_INVALID),
    "signature byte": (_flip_signature_byte, Code.DSSE_SIGNATURE_INVALID),
    "payloadType": (lambda e: e.update(payloadType="application/json"), Code.DSSE_PAYLOAD_TYPE),
    "register value": (_change_register, Code.DSSE_SIGNATURE_INVALID),
    "signer's key ID": (lambda e: e["signatures"][0].update(keyid="0" * 64), Code.DSSE_UNTRUSTED_SIGNER),
}


@pytest.mark.parametrize("tampering", TAMPERING, ids=str)
def test_a_tampered_envelope_is_refused_with_its_code(signer: CryptoSigner, tampering: str) -> None:
    change, code = TAMPERING[tampering]
    data = dsse.sign(PAYLOAD, PAYLOAD_TYPE, [signer]).model_dump(mode="json")
    change(data)
    with pytest.raises(BaselineRefusedError) as caught:
        dsse.verify(dsse.parse_envelope(data), [signer.public_key], PAYLOAD_TYPE)
    assert caught.value.code == code


def test_a_signature_by_another_key_is_refused(signer: CryptoSigner) -> None:
    envelope = dsse.sign(PAYLOAD, PAYLOAD_TYPE, [generate_signer()])
    with pytest.raises(BaselineRefusedError) as caught:
        dsse.verify(envelope, [signer.public_key], PAYLOAD_TYPE)
    assert caught.value.code == Code.DSSE_UNTRUSTED_SIGNER


def test_every_signature_by_a_pinned_key_must_verify() -> None:
    first, second = generate_signer(KeyType.ED25519), generate_signer(KeyType.ECDSA_P256)
    data = dsse.sign(PAYLOAD, PAYLOAD_TYPE, [first, second]).model_dump(mode="json")
    _flip_signature_byte(data)  # the first key's signature
    envelope = dsse.parse_envelope(data)
    assert dsse.verify(envelope, [second.public_key], PAYLOAD_TYPE).signers == (second.public_key.keyid,)
    with pytest.raises(BaselineRefusedError) as caught:
        dsse.verify(envelope, [first.public_key, second.public_key], PAYLOAD_TYPE)
    assert caught.value.code == Code.DSSE_SIGNATURE_INVALID


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.pop("signatures"),
        lambda e: e.update(signatures=[]),
        lambda e: e.update(extra=1),
        lambda e: e.update(payload=e["payload"].replace("=", "") + "@"),
        lambda e: e["signatures"][0].update(keyid="\u00e9"),
        lambda e: e["signatures"].append(dict(e["signatures"][0])),
    ],
)
def test_malformed_envelopes_are_refused(change: Callable[[dict[str, Any]], None]) -> None:
    data = dsse.sign(PAYLOAD, PAYLOAD_TYPE, [generate_signer()]).model_dump(mode="json")
    change(data)
    with pytest.raises(BaselineInputError) as caught:
        dsse.verify(dsse.parse_envelope(data), [], PAYLOAD_TYPE)
    assert caught.value.code == Code.DSSE_MALFORMED


def test_non_canonical_base64_is_refused() -> None:
    signer = generate_signer()
    data = dsse.sign(b"ab", PAYLOAD_TYPE, [signer]).model_dump(mode="json")
    assert data["payload"] == "YWI="
    data["payload"] = "YWJ="  # same bytes, other padding bits
    with pytest.raises(InputError) as caught:
        dsse.verify(dsse.parse_envelope(data), [signer.public_key], PAYLOAD_TYPE)
    assert caught.value.code == Code.DSSE_MALFORMED


def _pem(key: Any, encryption: Any = None) -> bytes:
    return bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption or NoEncryption()))


@pytest.mark.parametrize(
    ("pem", "code"),
    [
        (_pem(ec.generate_private_key(ec.SECP384R1())), Code.KEY_UNSUPPORTED),
        (_pem(rsa.generate_private_key(65537, 2048)), Code.KEY_UNSUPPORTED),
        (_pem(ec.generate_private_key(ec.SECP256R1()), BestAvailableEncryption(b"pw")), Code.KEY_MALFORMED),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", Code.KEY_MALFORMED),
        (b"not a key", Code.KEY_MALFORMED),
    ],
    ids=["p384", "rsa", "encrypted", "garbage-pem", "not-pem"],
)
def test_unsupported_or_unreadable_keys_are_refused(pem: bytes, code: Code) -> None:
    for load in (load_signer, load_public_key):
        with pytest.raises(BaselineInputError) as caught:
            load(pem)
        assert caught.value.code == code


def test_the_log_key_is_ed25519_named_by_the_origin() -> None:
    ed25519 = generate_signer(KeyType.ED25519)
    log_signer = load_log_signer(private_pem(ed25519), "example.com/bgs")
    assert log_signer.verifier.vkey.startswith("example.com/bgs+")
    with pytest.raises(BaselineInputError) as caught:
        load_log_signer(private_pem(generate_signer(KeyType.ECDSA_P256)), "example.com/bgs")
    assert caught.value.code == Code.KEY_UNSUPPORTED
