"""KEK providers: the file KEK (loading, wrap/unwrap, typed errors) and the PKCS#11 KEK on a real SoftHSM2 token."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from teeplane.errors import TeeplaneError
from teeplane.tks.envelope import Envelope, open_envelope, seal
from teeplane.tks.kek import (
    KEK_UNAVAILABLE,
    KEK_UNWRAP_FAILED,
    FileKek,
    KekProvider,
    KekUnavailableError,
    KekUnwrapError,
    Pkcs11Kek,
)

if TYPE_CHECKING:
    from conftest import SoftHsm  # tests/tks/conftest.py

KEY = bytes(range(32))
AAD = b"teeplane-tks\0k\x001"


def _unavailable(exc: pytest.ExceptionInfo[KekUnavailableError], *secrets: str) -> None:
    assert exc.value.code == KEK_UNAVAILABLE
    for secret in secrets:
        assert secret not in str(exc.value)
        assert secret not in repr(exc.value)


# --- FileKek ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        KEY,
        KEY.hex().encode(),
        KEY.hex().upper().encode() + b"\n",
        base64.b64encode(KEY) + b"\n",
        base64.urlsafe_b64encode(KEY).rstrip(b"="),
    ],
    ids=["raw", "hex", "hex-upper-newline", "base64", "base64url"],
)
def test_file_kek_loads_raw_hex_and_base64(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kek"
    path.write_bytes(content)
    kek = FileKek.from_file(path)
    assert kek.kek_id == "file:" + hashlib.sha256(KEY).hexdigest()[:16]
    assert kek.unwrap(FileKek(KEY).wrap(b"dek", AAD), AAD) == b"dek"


def test_file_kek_from_env_value_and_file(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_text(KEY.hex())
    by_value = FileKek.from_env({"TEEPLANE_TKS_KEK": base64.b64encode(KEY).decode()})
    by_file = FileKek.from_env({"TEEPLANE_TKS_KEK_FILE": str(path)})
    assert by_value.kek_id == by_file.kek_id == FileKek(KEY).kek_id


def test_file_kek_round_trip_and_fresh_nonces() -> None:
    kek: KekProvider = FileKek(KEY)
    first, second = kek.wrap(b"d" * 32, AAD), kek.wrap(b"d" * 32, AAD)
    assert first != second
    assert len(first) == 12 + 32 + 16
    assert kek.unwrap(first, AAD) == kek.unwrap(second, AAD) == b"d" * 32


@pytest.mark.parametrize(
    "mutate",
    [
        lambda w: bytes([w[0] ^ 1]) + w[1:],
        lambda w: w[:20] + bytes([w[20] ^ 0x80]) + w[21:],
        lambda w: w[:-1] + bytes([w[-1] ^ 1]),
        lambda w: w[:-1],
        lambda w: w[:27],
        lambda w: b"",
        lambda w: w + b"\0",
        lambda w: w + b"\0" * 2000,
    ],
    ids=["nonce", "body", "tag", "truncated", "too-short", "empty", "extended", "huge"],
)
def test_file_kek_unwrap_refuses_tampering(mutate: Callable[[bytes], bytes]) -> None:
    kek = FileKek(KEY)
    wrapped = kek.wrap(b"d" * 32, AAD)
    with pytest.raises(KekUnwrapError) as exc:
        kek.unwrap(mutate(wrapped), AAD)
    assert exc.value.code == KEK_UNWRAP_FAILED


def test_file_kek_unwrap_refuses_other_aad_and_other_kek() -> None:
    kek = FileKek(KEY)
    wrapped = kek.wrap(b"d" * 32, AAD)
    with pytest.raises(KekUnwrapError):
        kek.unwrap(wrapped, AAD + b"2")
    with pytest.raises(KekUnwrapError):
        FileKek(os.urandom(32)).unwrap(wrapped, AAD)


@pytest.mark.parametrize(
    "content",
    [
        KEY[:31],
        KEY + b"\n\n",
        KEY.hex()[:-2].encode(),
        base64.b64encode(KEY[:31]),
        b"\xff" * 40,
        KEY.hex().encode() + b"zz",
        b"",
    ],
    ids=["31-raw", "34-raw", "short-hex", "short-base64", "binary", "bad-hex", "empty"],
)
def test_file_kek_refuses_bad_key_files_without_showing_them(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kek"
    path.write_bytes(content)
    with pytest.raises(KekUnavailableError) as exc:
        FileKek.from_file(path)
    _unavailable(exc, KEY.hex()[:16], base64.b64encode(KEY)[:16].decode())
    assert exc.value.where == str(path)


def test_file_kek_loading_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(KekUnavailableError) as exc:
        FileKek.from_file(tmp_path / "missing")
    _unavailable(exc)
    big = tmp_path / "big"
    big.write_bytes(b"0" * 10_000)
    with pytest.raises(KekUnavailableError):
        FileKek.from_file(big)
    with pytest.raises(KekUnavailableError):
        FileKek(b"short")
    secret = base64.b64encode(os.urandom(31)).decode()
    with pytest.raises(KekUnavailableError) as exc:
        FileKek.from_env({"TEEPLANE_TKS_KEK": secret})
    _unavailable(exc, secret)
    for env in ({}, {"TEEPLANE_TKS_KEK": KEY.hex(), "TEEPLANE_TKS_KEK_FILE": str(tmp_path / "kek")}):
        with pytest.raises(KekUnavailableError) as exc:
            FileKek.from_env(env)
        _unavailable(exc, KEY.hex())


def test_file_kek_repr_hides_the_key() -> None:
    kek = FileKek(KEY)
    text = repr(kek) + str(kek)
    assert kek.kek_id in text
    for encoding in (KEY.hex(), base64.b64encode(KEY).decode(), repr(KEY)):
        assert encoding not in text
    assert KEY.hex() not in str(vars(kek))


# --- Pkcs11Kek on SoftHSM2 -------------------------------------------------------------------------


def _kek(
    hsm: SoftHsm, label: str, *, create: bool = False, token: str | None = None, pin: str | None = None
) -> Pkcs11Kek:
    return Pkcs11Kek(
        token_label=token or hsm.token,
        user_pin=pin or hsm.user_pin,
        key_label=label,
        module=hsm.module,
        create=create,
    )


@pytest.fixture
def session(softhsm: SoftHsm) -> Iterator[pkcs11.Session]:
    """A second, independent session on the test token (the login is shared with Pkcs11Kek's)."""
    _kek(softhsm, "login", create=True)
    token = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.token)
    with token.open(rw=True) as opened:
        yield opened


def test_pkcs11_kek_created_in_token_sensitive_and_not_extractable(
    softhsm: SoftHsm, kek_label: str, session: pkcs11.Session
) -> None:
    kek = _kek(softhsm, kek_label, create=True)
    assert kek.kek_id == f"pkcs11:{softhsm.token}/{kek_label}"
    key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=kek_label)
    assert key[Attribute.TOKEN] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.VALUE_LEN] == 32
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.VALUE]
    wrapping = session.generate_key(KeyType.AES, 256, template={Attribute.WRAP: True})
    assert isinstance(wrapping, pkcs11.WrapMixin)
    with pytest.raises(pkcs11.exceptions.KeyUnextractable):
        wrapping.wrap_key(key)


def test_pkcs11_kek_round_trip_and_tamper(softhsm: SoftHsm, kek_label: str) -> None:
    kek: KekProvider = _kek(softhsm, kek_label, create=True)
    dek = os.urandom(32)
    wrapped = kek.wrap(dek, AAD)
    assert len(wrapped) == 12 + 32 + 16
    assert wrapped != kek.wrap(dek, AAD)
    assert kek.unwrap(wrapped, AAD) == dek
    # the format is plain AES-256-GCM, nonce first: a wrong key, AAD or byte is refused
    for bad, aad in [
        (wrapped, AAD + b"x"),
        (bytes([wrapped[0] ^ 1]) + wrapped[1:], AAD),
        (wrapped[:-1] + bytes([wrapped[-1] ^ 1]), AAD),
        (wrapped[:30], AAD),
        (FileKek(KEY).wrap(dek, AAD), AAD),
    ]:
        with pytest.raises(KekUnwrapError) as exc:
            kek.unwrap(bad, aad)
        assert exc.value.code == KEK_UNWRAP_FAILED


def test_pkcs11_kek_not_created_unless_asked(softhsm: SoftHsm, kek_label: str) -> None:
    with pytest.raises(KekUnavailableError) as exc:
        _kek(softhsm, kek_label)
    _unavailable(exc, softhsm.user_pin)
    assert exc.value.http_status == 503


def test_second_instance_finds_the_key_and_opens_envelopes(softhsm: SoftHsm, kek_label: str) -> None:
    first = _kek(softhsm, kek_label, create=True)
    second = _kek(softhsm, kek_label)
    envelope = seal(b"material", key_id="k", version=1, kek=first)
    assert open_envelope(envelope, key_id="k", version=1, kek=second) == b"material"
    assert open_envelope(seal(b"back", key_id="k", version=2, kek=second), key_id="k", version=2, kek=first) == b"back"
    assert _kek(softhsm, kek_label, create=True).kek_id == first.kek_id  # found, not created twice


def test_another_process_opens_envelopes_from_the_token(softhsm: SoftHsm, kek_label: str, tmp_path: Path) -> None:
    envelope = seal(b"persisted", key_id="k", version=3, kek=_kek(softhsm, kek_label, create=True))
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.user_pin + "\n")
    script = (
        "import sys\n"
        "from teeplane.tks.envelope import Envelope, open_envelope\n"
        "from teeplane.tks.kek import Pkcs11Kek\n"
        "kek = Pkcs11Kek.from_env()\n"
        "sys.stdout.write(open_envelope(Envelope.from_bytes(sys.stdin.buffer.read()), key_id='k', version=3, kek=kek)"
        ".decode())\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "SOFTHSM2_CONF": str(softhsm.conf),
        "TEEPLANE_TKS_PKCS11_MODULE": softhsm.module,
        "TEEPLANE_TKS_PKCS11_TOKEN": softhsm.token,
        "TEEPLANE_TKS_PKCS11_PIN_FILE": str(pin_file),
        "TEEPLANE_TKS_PKCS11_KEY_LABEL": kek_label,
    }
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=envelope.to_bytes(),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    assert out.stdout == b"persisted"
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope


def test_wrong_pin_is_refused_by_the_token(softhsm: SoftHsm, kek_label: str) -> None:
    with pytest.raises(KekUnavailableError) as exc:
        _kek(softhsm, kek_label, create=True, token=softhsm.idle_token, pin="not-the-pin")
    _unavailable(exc, "not-the-pin", softhsm.user_pin)
    assert "PinIncorrect" in exc.value.message


def test_wrong_pin_is_refused_while_logged_in(softhsm: SoftHsm, kek_label: str) -> None:
    _kek(softhsm, kek_label, create=True)
    with pytest.raises(KekUnavailableError) as exc:
        _kek(softhsm, kek_label, pin="not-the-pin")
    _unavailable(exc, "not-the-pin", softhsm.user_pin)


def test_pkcs11_configuration_errors_are_typed(softhsm: SoftHsm, kek_label: str, tmp_path: Path) -> None:
    with pytest.raises(KekUnavailableError) as exc:
        _kek(softhsm, kek_label, token="no-such-token")
    _unavailable(exc, softhsm.user_pin)
    with pytest.raises(KekUnavailableError) as exc:
        Pkcs11Kek(token_label=softhsm.token, user_pin=softhsm.user_pin, module=str(tmp_path / "missing.so"))
    _unavailable(exc, softhsm.user_pin)
    with pytest.raises(KekUnavailableError):
        _kek(softhsm, "")
    for env in (
        {},
        {"TEEPLANE_TKS_PKCS11_TOKEN": softhsm.token},
        {
            "TEEPLANE_TKS_PKCS11_TOKEN": softhsm.token,
            "TEEPLANE_TKS_PKCS11_PIN": "a",
            "TEEPLANE_TKS_PKCS11_PIN_FILE": "b",
        },
        {"TEEPLANE_TKS_PKCS11_TOKEN": softhsm.token, "TEEPLANE_TKS_PKCS11_PIN_FILE": str(tmp_path / "missing")},
    ):
        with pytest.raises(KekUnavailableError) as exc:
            Pkcs11Kek.from_env(env)
        _unavailable(exc, softhsm.user_pin)


def test_pkcs11_kek_refuses_an_extractable_key(softhsm: SoftHsm, kek_label: str, session: pkcs11.Session) -> None:
    session.generate_key(
        KeyType.AES,
        256,
        label=kek_label,
        store=True,
        template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
    )
    with pytest.raises(KekUnavailableError) as exc:
        _kek(softhsm, kek_label)
    assert "extractable" in exc.value.message


def test_pkcs11_kek_repr_and_errors_hide_the_pin(softhsm: SoftHsm, kek_label: str) -> None:
    kek = _kek(softhsm, kek_label, create=True)
    assert repr(kek) == f"Pkcs11Kek(kek_id={kek.kek_id!r})"
    assert softhsm.user_pin not in repr(kek) + str(vars(kek))
    with pytest.raises(TeeplaneError) as exc:
        kek.unwrap(b"\0" * 40, AAD)
    assert softhsm.user_pin not in str(exc.value)
