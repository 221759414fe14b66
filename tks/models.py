"""Trusted Key Service data: keys, their versions, and release policies (the HTTP and etcd contract)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from teeplane.attestation.reference import TcbStatus

KEY_ID = r"^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$"
_WORKLOAD = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
MAX_SECRET_BYTES = 64 * 1024


def _workload(value: str) -> str:
    if not _WORKLOAD.fullmatch(value):
        raise ValueError(f"{value!r} is not namespace/name")
    return value


Workload = Annotated[str, AfterValidator(_workload)]
TeeType = Literal["tdx", "snp"]


def _all_tee_types() -> list[TeeType]:
    return ["tdx", "snp"]


def _up_to_date_only() -> list[TcbStatus]:
    return ["UpToDate"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyKind(StrEnum):
    """What a key holds: a generated AES-256 data key, or an opaque secret given by its owner."""

    AES256 = "aes-256"
    SECRET = "secret"


class ReleasePolicy(_Model):
    """Who may receive a key. Fail closed: an empty list admits nobody, except `baselines`, where
    an empty list means "any baseline" only when `any_baseline` is set."""

    workloads: list[Workload] = Field(min_length=1, description="namespace/name of workloads that may receive it")
    baselines: list[str] = Field(default_factory=list, description="accepted baseline IDs")
    any_baseline: bool = False
    tee_types: list[TeeType] = Field(default_factory=_all_tee_types, min_length=1)
    tcb_statuses: list[TcbStatus] = Field(default_factory=_up_to_date_only, min_length=1)
    allow_simulated: bool = False
    require_latest_version: bool = False

    @model_validator(mode="after")
    def _baselines_or_any(self) -> ReleasePolicy:
        if not self.baselines and not self.any_baseline:
            raise ValueError("list accepted baselines, or set any_baseline: true")
        return self


class CreateKey(_Model):
    """POST /v1/keys: a new key, generated (aes-256) or given (secret, base64url in `value`)."""

    id: str = Field(pattern=KEY_ID)
    kind: KeyKind = KeyKind.AES256
    value: str | None = Field(default=None, max_length=(MAX_SECRET_BYTES * 4) // 3 + 4)
    policy: ReleasePolicy

    @model_validator(mode="after")
    def _value_matches_kind(self) -> CreateKey:
        if (self.kind is KeyKind.SECRET) != (self.value is not None):
            raise ValueError("a secret needs `value`; an aes-256 key is generated and takes none")
        return self


class RotateKey(_Model):
    """POST /v1/keys/{id}/rotate: a new version (generated, or the new secret value)."""

    value: str | None = Field(default=None, max_length=(MAX_SECRET_BYTES * 4) // 3 + 4)


class KeyVersion(_Model):
    """One version of a key's material (the material itself is never part of metadata)."""

    version: int = Field(ge=1)
    created_at: datetime


class KeyMetadata(_Model):
    """A key as the admin API shows it."""

    id: str
    kind: KeyKind
    created_at: datetime
    versions: list[KeyVersion]
    policy: ReleasePolicy

    @property
    def latest(self) -> int:
        """The newest version number."""
        return max(v.version for v in self.versions)


class KeyList(_Model):
    """GET /v1/keys: every key's ID."""

    keys: list[str]
