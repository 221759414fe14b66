"""Baseline documents: an in-toto Statement v1 with the TEEPlane baseline predicate, in canonical form.

```
{"_type": "https://in-toto.io/Statement/v1",
 "subject": [{"name": "<artifact>", "digest": {...}}, ...,               the build's artifacts, then
             {"name": "measurement/mrtd", "digest": {"sha384": ...}}, ...] the fixed measurements
 "predicateType": "https://teeplane.io/baseline/v1",
 "predicate": {"name"?, "version"?,
               "measurements": {ExpectedMeasurements: tee, registers, per-RTMR events, artifacts},
               "vmm": {"type", "version"?, "machine"?, "vcpus"?, "vcpu_type"?, "memory_mib"?},
               "builder": {"id"},                          as SLSA provenance's runDetails.builder
               "source"?: {"uri", "digest": {"gitCommit": ...}},  a SLSA resource descriptor
               "validity": {"notBefore", "notAfter"}}}      RFC 3339 UTC, whole seconds
```

The document is RFC 8785 canonical JSON of that object, optional fields left out when unset; it is
the DSSE payload. The subjects are derived from the predicate, never given separately, so they
cannot disagree with it. The baseline ID is `sha256:<hex SHA-256 of the canonical statement>`: it
names the content alone, so it is known before signing or logging, the same statement signed twice
(another key, a rotated key) keeps its ID, and any change to a register, artifact or date is a new ID.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Self

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from teeplane.attestation.reference import RtmrName
from teeplane.baseline.errors import BaselineInputError, BaselineRefusedError, Code
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.remote import first_error

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://teeplane.io/baseline/v1"
#: The DSSE payloadType of an in-toto statement.
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Subjects naming a measurement rather than an artifact start with this.
MEASUREMENT_PREFIX = "measurement/"
#: The builder of baselines built with `teeplane baseline build` on a workstation.
LOCAL_BUILDER = "https://teeplane.io/builder/local/v1"
DEFAULT_VALIDITY = timedelta(days=365)
ID_PREFIX = "sha256:"
ID_PATTERN = r"^sha256:[0-9a-f]{64}$"
#: A baseline named by name and version, e.g. ledger@1.0.0 (the BGS resolves it to the latest such).
REFERENCE_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?@[A-Za-z0-9._+-]{1,128}$"

RTMRS: tuple[RtmrName, ...] = ("rtmr0", "rtmr1", "rtmr2", "rtmr3")
#: Per TEE, the measurements only the other TEE reports.
_FOREIGN = {"tdx": ("snp_measurement", "host_data"), "snp": ("mrtd", "rtmrs", "events", "mrconfigid")}
_URI = r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class Subject(_Model):
    """An in-toto subject: a name and its digests (algorithm -> lowercase hex)."""

    name: str = Field(min_length=1, max_length=512)
    digest: dict[str, str] = Field(min_length=1)


class Builder(_Model):
    """Who built the baseline: a URI naming the build platform (SLSA `builder.id`)."""

    id: str = Field(pattern=_URI, max_length=512)


class Source(_Model):
    """Where the build's inputs come from: a SLSA resource descriptor, e.g. a repository and commit."""

    uri: str = Field(pattern=_URI, max_length=512, description="e.g. git+https://github.com/org/repo")
    digest: dict[str, str] = Field(min_length=1, description="e.g. {'gitCommit': '<40 hex>'}")


class VmmParameters(_Model):
    """How the VM is launched, where that changes what the TEE measures (memory layout, vCPUs)."""

    type: str = Field(default="qemu", min_length=1, max_length=64, description="qemu, cloud-hypervisor, ...")
    version: str | None = Field(default=None, max_length=64)
    machine: str | None = Field(default=None, max_length=64, description="e.g. q35")
    vcpus: int | None = Field(default=None, ge=1, le=4096)
    vcpu_type: str | None = Field(default=None, max_length=64, description="SEV-SNP: e.g. EPYC-v4")
    memory_mib: int | None = Field(default=None, ge=1, le=1 << 30)


class Validity(_Model):
    """When the baseline may be used: from notBefore until notAfter (exclusive), UTC whole seconds."""

    not_before: datetime = Field(alias="notBefore")
    not_after: datetime = Field(alias="notAfter")

    @field_validator("not_before", "not_after")
    @classmethod
    def _utc_seconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("a time needs a UTC offset")
        return value.astimezone(UTC).replace(microsecond=0)

    @field_serializer("not_before", "not_after")
    def _rfc3339(self, value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.not_after <= self.not_before:
            raise ValueError("notAfter must be after notBefore")
        return self


class BaselineMetadata(_Model):
    """What a baseline says besides its measurements (the validity defaults to a year from signing)."""

    name: str | None = Field(default=None, min_length=1, max_length=253)
    version: str | None = Field(default=None, min_length=1, max_length=128)
    vmm: VmmParameters = VmmParameters()
    builder: Builder = Builder(id=LOCAL_BUILDER)
    source: Source | None = None
    validity: Validity | None = None


class BaselinePredicate(BaselineMetadata):
    """The predicate of `https://teeplane.io/baseline/v1`."""

    measurements: ExpectedMeasurements
    validity: Validity

    @model_validator(mode="after")
    def _complete(self) -> Self:
        foreign = [name for name in _FOREIGN[self.measurements.tee] if getattr(self.measurements, name)]
        if foreign:
            raise ValueError(f"{', '.join(foreign)} cannot be checked on {self.measurements.tee}")
        try:
            self.measurements.reference_values()
        except ValidationError as exc:
            raise ValueError(f"the measurements do not make reference values: {first_error(exc)}") from None
        names = [a.name for a in self.measurements.artifacts]
        if len(set(names)) != len(names):
            raise ValueError("two artifacts have the same name")
        if any(name.startswith(MEASUREMENT_PREFIX) for name in names):
            raise ValueError(f"artifact names starting with {MEASUREMENT_PREFIX!r} are reserved for measurements")
        return self


class Statement(_Model):
    """An in-toto Statement v1 whose predicate is a baseline."""

    type: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[Subject] = Field(min_length=1)
    predicate_type: Literal["https://teeplane.io/baseline/v1"] = Field(alias="predicateType")
    predicate: BaselinePredicate


@dataclass(frozen=True, slots=True)
class BaselineDocument:
    """A statement, its canonical bytes (the DSSE payload) and its baseline ID."""

    statement: Statement
    payload: bytes
    id: str


def subjects(measurements: ExpectedMeasurements) -> list[Subject]:
    """The subjects of a baseline: every artifact, then every fixed measurement, in register order."""
    registers: list[tuple[str, str, str | None]] = [
        ("mrtd", "sha384", measurements.mrtd),
        *((name, "sha384", measurements.rtmrs.get(name)) for name in RTMRS),
        ("mrconfigid", "sha384", measurements.mrconfigid),
        ("snp_measurement", "sha384", measurements.snp_measurement),
        ("host_data", "sha256", measurements.host_data),
    ]
    return [Subject(name=a.name, digest=a.digest) for a in measurements.artifacts] + [
        Subject(name=MEASUREMENT_PREFIX + name, digest={algorithm: value})
        for name, algorithm, value in registers
        if value is not None
    ]


def canonical(statement: Statement) -> bytes:
    """The statement as RFC 8785 canonical JSON, unset optional fields left out."""
    try:
        return rfc8785.dumps(statement.model_dump(mode="json", exclude_none=True))
    except rfc8785.CanonicalizationError as exc:
        raise BaselineInputError(Code.BASELINE_MALFORMED, f"the statement has no canonical form: {exc}") from None


def baseline_id(payload: bytes) -> str:
    """`sha256:<hex>` of a canonical statement."""
    return ID_PREFIX + hashlib.sha256(payload).hexdigest()


def named_reference(predicate: dict[str, Any]) -> str | None:
    """`name@version` of a baseline predicate (as JSON), when it has both and they form a reference."""
    name, version = predicate.get("name"), predicate.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        return None
    reference = f"{name}@{version}"
    return reference if re.fullmatch(REFERENCE_PATTERN, reference) else None


def measurements_digest(predicate: dict[str, Any]) -> str:
    """SHA-256 of a predicate's measurements (as JSON), canonical: equal exactly when they are equal."""
    return hashlib.sha256(rfc8785.dumps(predicate.get("measurements"))).hexdigest()


def build_document(
    measurements: ExpectedMeasurements,
    metadata: BaselineMetadata | None = None,
    *,
    now: datetime | None = None,
    valid_for: timedelta = DEFAULT_VALIDITY,
) -> BaselineDocument:
    """The baseline document for `measurements`; without a validity in `metadata`, it is valid from
    `now` (default: the current time) for `valid_for`."""
    metadata = metadata or BaselineMetadata()
    validity = metadata.validity
    if validity is None:
        start = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        validity = Validity(notBefore=start, notAfter=start + valid_for)
    try:
        predicate = BaselinePredicate.model_validate(
            {**metadata.model_dump(exclude={"validity"}), "validity": validity, "measurements": measurements}
        )
    except ValidationError as exc:
        raise BaselineInputError(Code.BASELINE_MALFORMED, first_error(exc), where="predicate") from None
    statement = Statement(
        _type=STATEMENT_TYPE, subject=subjects(measurements), predicateType=PREDICATE_TYPE, predicate=predicate
    )
    payload = canonical(statement)
    return BaselineDocument(statement, payload, baseline_id(payload))


def parse_document(payload: bytes) -> BaselineDocument:
    """Read a signed payload as a baseline document: an in-toto statement of the baseline predicate,
    valid, with the subjects its predicate gives, in canonical form."""
    try:
        data: Any = json.loads(payload)
    except ValueError:
        raise BaselineInputError(Code.BASELINE_MALFORMED, "the statement is not JSON") from None
    if not isinstance(data, dict) or data.get("_type") != STATEMENT_TYPE:
        raise BaselineRefusedError(Code.BASELINE_STATEMENT_TYPE, f"not an in-toto statement ({STATEMENT_TYPE})")
    if data.get("predicateType") != PREDICATE_TYPE:
        raise BaselineRefusedError(
            Code.BASELINE_PREDICATE_TYPE, f"predicateType {data.get('predicateType')!r}, expected {PREDICATE_TYPE}"
        )
    try:
        statement = Statement.model_validate(data)
    except ValidationError as exc:
        raise BaselineInputError(Code.BASELINE_MALFORMED, first_error(exc)) from None
    if statement.subject != subjects(statement.predicate.measurements):
        raise BaselineRefusedError(
            Code.BASELINE_SUBJECT_MISMATCH, "the subjects are not the predicate's artifacts and measurements"
        )
    if canonical(statement) != payload:
        raise BaselineRefusedError(Code.BASELINE_NOT_CANONICAL, "the statement is not in its canonical form")
    return BaselineDocument(statement, payload, baseline_id(payload))


def check_validity(statement: Statement, at: datetime) -> None:
    """Refuse a baseline used before its notBefore or from its notAfter on."""
    validity = statement.predicate.validity
    if at < validity.not_before:
        raise BaselineRefusedError(Code.BASELINE_NOT_YET_VALID, f"valid only from {validity.not_before.isoformat()}")
    if at >= validity.not_after:
        raise BaselineRefusedError(Code.BASELINE_EXPIRED, f"expired at {validity.not_after.isoformat()}")
