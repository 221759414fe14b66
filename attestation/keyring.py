"""Token signing keys with rotation: one current key, and retired keys published until their tokens expire.

A key's `kid` is its RFC 7638 JWK thumbprint, so it names the key material itself. The ring
serialises to a JSON string (private keys as private JWKs) that the RAS store persists; this
module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from teeplane.attestation.errors import Code
from teeplane.errors import InputError

#: The signing algorithms and the curve each requires.
CURVES: dict[str, str] = {"ES256": "P-256", "ES384": "P-384"}
#: How long a retired key stays published: the longest token lifetime plus verifier leeway and JWKS caching.
DEFAULT_MAX_TOKEN_LIFETIME = timedelta(minutes=10)


def as_utc(when: datetime) -> datetime:
    """`when` as an aware datetime (naive means UTC)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An EC private key with its JWS algorithm; `kid` is the key's RFC 7638 thumbprint."""

    jwk: ECKey
    alg: str
    kid: str

    @classmethod
    def generate(cls, alg: str) -> SigningKey:
        """A fresh key for `alg` (P-256 for ES256, P-384 for ES384)."""
        if alg not in CURVES:
            raise ValueError(f"unsupported signing algorithm {alg!r} (use {' or '.join(CURVES)})")
        return cls.from_jwk(ECKey.generate_key(CURVES[alg]), alg)

    @classmethod
    def from_jwk(cls, key: ECKey, alg: str) -> SigningKey:
        """Wrap a private EC key; its curve must be the one `alg` requires."""
        if not key.is_private or key.curve_name != CURVES.get(alg):
            raise ValueError(f"{alg} needs a private {CURVES.get(alg, 'P-256 or P-384')} key")
        return cls(key, alg, key.thumbprint())

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK as JWKS publishes it: key parameters, `kid`, `alg`, `use`."""
        public = self.jwk.as_dict(private=False)
        return {
            "kty": "EC",
            "crv": public["crv"],
            "x": public["x"],
            "y": public["y"],
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
        }


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A key that no longer signs but stays published for tokens it signed before `retired_at`."""

    key: SigningKey
    retired_at: datetime


@dataclass(slots=True)
class KeyRing:
    """The current signing key and the retired keys still published.

    Retired keys stay in the JWKS until `retired_at + max_token_lifetime`; `sign` refuses tokens
    that would outlive that, so a token never outlives its key's publication.
    """

    current: SigningKey
    retired: list[RetiredKey] = field(default_factory=list)
    max_token_lifetime: timedelta = DEFAULT_MAX_TOKEN_LIFETIME

    @classmethod
    def generate(cls, alg: str = "ES256", *, max_token_lifetime: timedelta = DEFAULT_MAX_TOKEN_LIFETIME) -> KeyRing:
        """A ring with one fresh key."""
        if max_token_lifetime <= timedelta(0):
            raise ValueError("max_token_lifetime must be positive")
        return cls(SigningKey.generate(alg), max_token_lifetime=max_token_lifetime)

    def rotate(self, now: datetime, alg: str | None = None) -> SigningKey:
        """Make a new current key (same algorithm unless `alg` is given); the old one retires at `now`."""
        self.retired.append(RetiredKey(self.current, as_utc(now)))
        self.current = SigningKey.generate(alg or self.current.alg)
        return self.current

    def prune(self, now: datetime) -> list[str]:
        """Drop retired keys whose tokens have all expired by `now`; return the dropped kids."""
        cutoff = as_utc(now) - self.max_token_lifetime
        dropped = [r.key.kid for r in self.retired if r.retired_at <= cutoff]
        self.retired = [r for r in self.retired if r.retired_at > cutoff]
        return dropped

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The JWK Set of the current and the retired keys, public parameters only."""
        return {"keys": [self.current.public_jwk(), *(r.key.public_jwk() for r in self.retired)]}

    def to_json(self) -> str:
        """The ring, private keys included, as a JSON string for the store to persist."""
        return _StoredRing(
            max_token_lifetime=self.max_token_lifetime,
            current=_StoredKey(alg=self.current.alg, jwk=_private_jwk(self.current)),
            retired=[
                _StoredRetired(alg=r.key.alg, jwk=_private_jwk(r.key), retired_at=r.retired_at) for r in self.retired
            ],
        ).model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """Read a ring written by `to_json`; raises InputError (keyring.malformed) naming what is wrong."""
        try:
            stored = _StoredRing.model_validate_json(text)
        except ValidationError as exc:
            # The error text would echo input values, private keys among them: name locations only.
            where = "; ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors())
            raise InputError(Code.KEYRING_MALFORMED.value, "the stored keyring is invalid", where=where) from None
        return cls(
            current=_load_key(stored.current, "current"),
            retired=[RetiredKey(_load_key(r, f"retired.{i}"), r.retired_at) for i, r in enumerate(stored.retired)],
            max_token_lifetime=stored.max_token_lifetime,
        )


class _StoredKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    alg: str
    jwk: dict[str, str]


class _StoredRetired(_StoredKey):
    retired_at: AwareDatetime


class _StoredRing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    max_token_lifetime: timedelta = Field(gt=timedelta(0))
    current: _StoredKey
    retired: list[_StoredRetired]


def _private_jwk(key: SigningKey) -> dict[str, str]:
    jwk = key.jwk.as_dict(private=True)
    return {name: str(jwk[name]) for name in ("kty", "crv", "x", "y", "d")}


def _load_key(stored: _StoredKey, where: str) -> SigningKey:
    try:
        jwk: dict[str, str | list[str]] = dict(stored.jwk)
        return SigningKey.from_jwk(ECKey.import_key(jwk), stored.alg)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InputError(
            Code.KEYRING_MALFORMED.value, f"the stored {stored.alg} key is not a valid private key", where=where
        ) from None
