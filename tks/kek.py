"""Key-encryption keys (KEKs): what wraps each key version's data-encryption key (DEK) at rest.

Two providers, one wrapped format (AES-256-GCM, 96-bit random nonce, `nonce || ciphertext || tag`):

- `FileKek`: an AES-256 key held in process memory, read from a file or the environment. Development only.
- `Pkcs11Kek`: a non-extractable AES-256 secret key inside a PKCS#11 token (SoftHSM2, an HSM); the
  key never leaves the token, which does the AES-GCM itself.

Errors carry stable codes: `tks.kek_unavailable` (the KEK cannot be loaded or used) and
`tks.kek_unwrap_failed` (the wrapped bytes or their AAD were altered, or another KEK wrapped them).
No message ever contains a key or a PIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from teeplane.errors import RefusedError, TeeplaneError

KEK_UNAVAILABLE = "tks.kek_unavailable"
KEK_UNWRAP_FAILED = "tks.kek_unwrap_failed"

KEK_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Largest wrapped DEK `unwrap` accepts (a wrapped 256-bit DEK is 60 bytes).
MAX_WRAPPED_BYTES = 1024

ENV_KEK = "TEEPLANE_TKS_KEK"
ENV_KEK_FILE = "TEEPLANE_TKS_KEK_FILE"
ENV_PKCS11_MODULE = "TEEPLANE_TKS_PKCS11_MODULE"
ENV_PKCS11_TOKEN = "TEEPLANE_TKS_PKCS11_TOKEN"
ENV_PKCS11_PIN = "TEEPLANE_TKS_PKCS11_PIN"
ENV_PKCS11_PIN_FILE = "TEEPLANE_TKS_PKCS11_PIN_FILE"
ENV_PKCS11_KEY_LABEL = "TEEPLANE_TKS_PKCS11_KEY_LABEL"

#: Where Debian's softhsm2 package installs the SoftHSM2 PKCS#11 module.
DEFAULT_PKCS11_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
DEFAULT_KEY_LABEL = "teeplane-tks-kek"

_MAX_SECRET_FILE_BYTES = 4096
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")
_BASE64_KEY = re.compile(r"[A-Za-z0-9+/_-]{43}=?")


class KekUnavailableError(TeeplaneError):
    """`tks.kek_unavailable`: the KEK cannot be loaded or the token cannot be used."""

    http_status = 503

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(KEK_UNAVAILABLE, message, where=where)


class KekUnwrapError(RefusedError):
    """`tks.kek_unwrap_failed`: wrapped bytes that this KEK did not wrap under this AAD."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(KEK_UNWRAP_FAILED, message, where=where)


class KekProvider(Protocol):
    """Wraps and unwraps DEKs under one KEK, binding each wrap to an AAD."""

    @property
    def kek_id(self) -> str:
        """Stable, non-secret identifier of the KEK, stored with every envelope it wraps."""
        ...

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """`dek` encrypted under the KEK, authenticated with `aad`."""
        ...

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """The DEK back, or `KekUnwrapError` if `wrapped` or `aad` is not what was wrapped."""
        ...


def _split(wrapped: bytes) -> tuple[bytes, bytes]:
    if not NONCE_BYTES + TAG_BYTES <= len(wrapped) <= MAX_WRAPPED_BYTES:
        bounds = f"{NONCE_BYTES + TAG_BYTES}..{MAX_WRAPPED_BYTES}"
        raise KekUnwrapError(f"a wrapped DEK is {bounds} bytes, got {len(wrapped)}")
    return wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]


def _read_secret_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > _MAX_SECRET_FILE_BYTES:
            raise KekUnavailableError(f"{what} file is {size} bytes, too large", where=str(path))
        return path.read_bytes()
    except OSError as exc:
        raise KekUnavailableError(f"cannot read {what} file: {exc.strerror}", where=str(path)) from None


def _parse_key(data: bytes, where: str) -> bytes:
    """A 256-bit key from 32 raw bytes, or 64 hex digits, or base64/base64url text."""
    if len(data) == KEK_BYTES:
        return data
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if _HEX_KEY.fullmatch(text):
        return bytes.fromhex(text)
    if _BASE64_KEY.fullmatch(text):
        return base64.urlsafe_b64decode(text.rstrip("=").replace("+", "-").replace("/", "_") + "=")
    raise KekUnavailableError(
        f"a KEK is {KEK_BYTES} raw bytes, 64 hex digits or base64 of {KEK_BYTES} bytes; got {len(data)} bytes"
        " of something else",
        where=where,
    )


class FileKek:
    """An AES-256 KEK in process memory (development; production uses `Pkcs11Kek`)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEK_BYTES:
            raise KekUnavailableError(f"a KEK is {KEK_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._kek_id = "file:" + hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path) -> FileKek:
        """The KEK in `path`: 32 raw bytes, or hex or base64 text."""
        return cls(_parse_key(_read_secret_file(path, "KEK"), str(path)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FileKek:
        """The KEK in `TEEPLANE_TKS_KEK` (hex or base64 text) or in the file `TEEPLANE_TKS_KEK_FILE` names."""
        env = os.environ if environ is None else environ
        value, path = env.get(ENV_KEK), env.get(ENV_KEK_FILE)
        if value is not None and path is None:
            return cls(_parse_key(value.encode("utf-8"), ENV_KEK))
        if path is not None and value is None:
            return cls.from_file(Path(path))
        raise KekUnavailableError(f"set exactly one of {ENV_KEK} and {ENV_KEK_FILE}")

    @property
    def kek_id(self) -> str:
        """`file:` and the first 16 hex digits of the key's SHA-256."""
        return self._kek_id

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """`nonce || AES-256-GCM(dek, aad)`."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """The DEK, or `KekUnwrapError`."""
        nonce, sealed = _split(wrapped)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise KekUnwrapError(f"the wrapped DEK does not authenticate under KEK {self._kek_id}") from None

    def __repr__(self) -> str:
        return f"FileKek(kek_id={self._kek_id!r})"


class _TokenAesKey(Protocol):
    """The part of a python-pkcs11 secret key object this module uses (the token does the AES-GCM)."""

    def encrypt(self, data: bytes, **kwargs: Any) -> bytes | Iterator[bytes]: ...

    def decrypt(self, data: bytes, **kwargs: Any) -> bytes | Iterator[bytes]: ...


# PKCS#11 login state belongs to the application and the token, not to a session, and python-pkcs11
# logs out when the session that logged in closes. So this process keeps one logged-in session per
# (module, token) for its lifetime, shared by every Pkcs11Kek on that token, and checks later PINs
# against the one the token accepted (as an HMAC under a per-process random key, never the PIN).
class _TokenLogin:
    def __init__(self, session: pkcs11.Session, pin_mac: bytes) -> None:
        self.session = session
        self.pin_mac = pin_mac
        self.lock = threading.Lock()


_LOGINS: dict[tuple[str, str], _TokenLogin] = {}
_LOGINS_LOCK = threading.Lock()
_PIN_MAC_KEY = os.urandom(32)

_PIN_REFUSED = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinLocked, p11.PinExpired)
# Errors that say the token or session is gone, not that the wrapped bytes are bad.
_TOKEN_GONE = (
    p11.DeviceError,
    p11.DeviceMemory,
    p11.DeviceRemoved,
    p11.HostMemory,
    p11.KeyHandleInvalid,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
)


def _login(module: str, token_label: str, user_pin: str) -> _TokenLogin:
    where = f"pkcs11:{token_label}"
    pin_mac = hmac.new(_PIN_MAC_KEY, user_pin.encode("utf-8"), hashlib.sha256).digest()
    with _LOGINS_LOCK:
        login = _LOGINS.get((module, token_label))
        if login is not None:
            if not hmac.compare_digest(login.pin_mac, pin_mac):
                raise KekUnavailableError("the user PIN differs from the one the token accepted", where=where)
            return login
        if not Path(module).is_file():
            raise KekUnavailableError(f"no PKCS#11 module at {module}", where=module)
        try:
            token = pkcs11.lib(module).get_token(token_label=token_label)
            session = token.open(rw=True, user_pin=user_pin)
        except p11.NoSuchToken:
            raise KekUnavailableError(f"no token labelled {token_label!r} in {module}", where=where) from None
        except p11.MultipleTokensReturned:
            raise KekUnavailableError(f"several tokens are labelled {token_label!r}", where=where) from None
        except _PIN_REFUSED as exc:
            raise KekUnavailableError(f"the token refused the user PIN ({type(exc).__name__})", where=where) from None
        except p11.PKCS11Error as exc:
            raise KekUnavailableError(f"cannot log in to the token: {type(exc).__name__}", where=where) from None
        login = _LOGINS[(module, token_label)] = _TokenLogin(session, pin_mac)
        return login


def _read_pin(env: Mapping[str, str]) -> str:
    value, path = env.get(ENV_PKCS11_PIN), env.get(ENV_PKCS11_PIN_FILE)
    if value is not None and path is None:
        return value
    if path is not None and value is None:
        try:
            return _read_secret_file(Path(path), "PIN").decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise KekUnavailableError("the PIN file is not UTF-8 text", where=path) from None
    raise KekUnavailableError(f"set exactly one of {ENV_PKCS11_PIN} and {ENV_PKCS11_PIN_FILE}")


class Pkcs11Kek:
    """An AES-256 KEK inside a PKCS#11 token: sensitive, never extractable, used for AES-GCM by the token.

    Found by `key_label` (a secret key object of type AES); with `create=True` it is generated in the
    token when missing. A key with that label that is extractable, not sensitive or not 256 bits is
    refused. The module reads its configuration once per process (SoftHSM2: `SOFTHSM2_CONF`).
    """

    def __init__(
        self,
        *,
        token_label: str,
        user_pin: str,
        key_label: str = DEFAULT_KEY_LABEL,
        module: str = DEFAULT_PKCS11_MODULE,
        create: bool = False,
    ) -> None:
        if not token_label or not key_label:
            raise KekUnavailableError("a PKCS#11 KEK needs a token label and a key label")
        self._kek_id = f"pkcs11:{token_label}/{key_label}"
        self._login = _login(module, token_label, user_pin)
        with self._login.lock:
            self._key = self._find_or_create(key_label, create)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, create: bool = False) -> Pkcs11Kek:
        """Configured by `TEEPLANE_TKS_PKCS11_TOKEN` (required), `_PIN` or `_PIN_FILE` (one of them),
        `_KEY_LABEL` and `_MODULE` (optional)."""
        env = os.environ if environ is None else environ
        token_label = env.get(ENV_PKCS11_TOKEN)
        if not token_label:
            raise KekUnavailableError(f"{ENV_PKCS11_TOKEN} names no token")
        return cls(
            token_label=token_label,
            user_pin=_read_pin(env),
            key_label=env.get(ENV_PKCS11_KEY_LABEL) or DEFAULT_KEY_LABEL,
            module=env.get(ENV_PKCS11_MODULE) or DEFAULT_PKCS11_MODULE,
            create=create,
        )

    def _find_or_create(self, key_label: str, create: bool) -> _TokenAesKey:
        session = self._login.session
        try:
            try:
                key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=key_label)
            except p11.NoSuchKey:
                if not create:
                    raise KekUnavailableError("no AES key with this label in the token", where=self._kek_id) from None
                key = session.generate_key(
                    KeyType.AES,
                    KEK_BYTES * 8,
                    label=key_label,
                    store=True,
                    capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                    template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True},
                )
            if not isinstance(key, pkcs11.EncryptMixin) or not isinstance(key, pkcs11.DecryptMixin):
                raise KekUnavailableError("the object with this label is not a secret key", where=self._kek_id)
            protected = key[Attribute.SENSITIVE] and not key[Attribute.EXTRACTABLE]
            usable = key[Attribute.ENCRYPT] and key[Attribute.DECRYPT] and key[Attribute.VALUE_LEN] == KEK_BYTES
        except p11.MultipleObjectsReturned:
            raise KekUnavailableError("several AES keys carry this label", where=self._kek_id) from None
        except p11.PKCS11Error as exc:
            raise KekUnavailableError(f"cannot find the key: {type(exc).__name__}", where=self._kek_id) from None
        if not protected:
            raise KekUnavailableError("refusing a KEK that is extractable or not sensitive", where=self._kek_id)
        if not usable:
            raise KekUnavailableError("the key is not a 256-bit AES key for encrypt/decrypt", where=self._kek_id)
        return key

    @property
    def kek_id(self) -> str:
        """`pkcs11:` token label `/` key label."""
        return self._kek_id

    def wrap(self, dek: bytes, aad: bytes) -> bytes:
        """`nonce || AES-256-GCM(dek, aad)`, encrypted by the token."""
        nonce = os.urandom(NONCE_BYTES)
        try:
            with self._login.lock:
                sealed = self._key.encrypt(dek, mechanism=Mechanism.AES_GCM, mechanism_param=_gcm(nonce, aad))
        except p11.PKCS11Error as exc:
            raise KekUnavailableError(f"the token cannot wrap: {type(exc).__name__}", where=self._kek_id) from None
        return nonce + cast(bytes, sealed)  # bytes in, bytes out (iterators only for iterator input)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        """The DEK, decrypted by the token, or `KekUnwrapError`."""
        nonce, sealed = _split(wrapped)
        try:
            with self._login.lock:
                dek = self._key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=_gcm(nonce, aad))
        except _TOKEN_GONE as exc:
            raise KekUnavailableError(f"the token cannot unwrap: {type(exc).__name__}", where=self._kek_id) from None
        except p11.PKCS11Error:
            raise KekUnwrapError(f"the wrapped DEK does not authenticate under KEK {self._kek_id}") from None
        return cast(bytes, dek)

    def __repr__(self) -> str:
        return f"Pkcs11Kek(kek_id={self._kek_id!r})"


def _gcm(nonce: bytes, aad: bytes) -> pkcs11.GCMParams:
    return pkcs11.GCMParams(nonce, aad, TAG_BYTES * 8)
