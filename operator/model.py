"""The ConfidentialWorkload resource (`teeplane.io/v1alpha1`): its spec and status as pydantic models.

These models are the one source of truth: `teeplane.operator.crd` generates the CRD's structural
schema from them (CEL rules ride along as `x-kubernetes-validations`), and the operator reads every
object through them. Field names are camelCase on the wire.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from teeplane.attestation.reference import TcbStatus
from teeplane.tks.key_files import KEY_PATH
from teeplane.tks.models import KEY_ID

GROUP = "teeplane.io"
VERSION = "v1alpha1"
KIND = "ConfidentialWorkload"
PLURAL = "confidentialworkloads"
API_VERSION = f"{GROUP}/{VERSION}"

Tee = Literal["tdx", "snp", "sim"]
TEES: tuple[Tee, ...] = ("tdx", "snp", "sim")
MAX_REPLICAS = 100
#: Names of the containers and ports the operator adds to every pod start with this.
RESERVED_PREFIX = "teeplane-"
#: The port of the EPS sidecar, in each pod and on the Service.
EPS_PORT = 8443
#: A digest-pinned image reference; also checked in CEL (see `Container.image`).
PINNED_IMAGE = r"^[^@]+@sha256:[0-9a-f]{64}$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_BASELINE = r"^(sha256:[0-9a-f]{64}|[a-z0-9]([-a-z0-9._]*[a-z0-9])?@[A-Za-z0-9._+-]+)$"


def _pinned(image: str) -> str:
    if not re.fullmatch(PINNED_IMAGE, image):
        raise ValueError(f"image {image} is not pinned by digest: use name@sha256:<64 hex digits>, not a tag")
    return image


def _cel(rule: str, message: str, **extra: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message, **extra}]}


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [r for rule in rules for r in rule["x-kubernetes-validations"]]}


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True
    )


class EnvVar(_Model):
    """An environment variable of a container."""

    name: str = Field(min_length=1, max_length=256)
    value: str = Field(default="", max_length=32768)


class ContainerPort(_Model):
    """A port a container listens on."""

    container_port: int = Field(ge=1, le=65535)
    name: str | None = Field(default=None, max_length=15, pattern=_DNS_LABEL)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class Resources(_Model):
    """Compute resources, as in a Pod: quantities such as `500m` or `1Gi`."""

    requests: dict[str, int | str] = Field(default_factory=dict, max_length=8)
    limits: dict[str, int | str] = Field(default_factory=dict, max_length=8)


class Container(_Model):
    """One application container; its image must be pinned by digest."""

    name: str = Field(max_length=63, pattern=_DNS_LABEL)
    image: Annotated[str, AfterValidator(_pinned)] = Field(
        max_length=512,
        description="image reference pinned by digest: name@sha256:<64 hex digits>",
        json_schema_extra=_cel(
            f"self.matches('{PINNED_IMAGE}')",
            "images must be pinned by digest (name@sha256:<64 hex digits>), not by tag",
            messageExpression=(
                "'image ' + self + ' is not pinned by digest: use name@sha256:<64 hex digits>, not a tag'"
            ),
        ),
    )
    command: list[str] = Field(default_factory=list, max_length=64)
    args: list[str] = Field(default_factory=list, max_length=256)
    env: list[EnvVar] = Field(default_factory=list, max_length=128)
    ports: list[ContainerPort] = Field(default_factory=list, max_length=32)
    resources: Resources = Field(default_factory=Resources)


class PodTemplate(_Model):
    """What runs in each pod, besides the attestation agent and the EPS sidecar the operator adds."""

    containers: list[Container] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra=_rules(
            _cel("self.all(c, self.exists_one(d, d.name == c.name))", "container names must be unique"),
            _cel(
                f"self.all(c, !c.name.startsWith('{RESERVED_PREFIX}'))",
                f"container names starting with {RESERVED_PREFIX} are reserved for the operator",
            ),
        ),
    )


def _up_to_date() -> list[TcbStatus]:
    return ["UpToDate"]


class Attestation(_Model):
    """What RAS accepts from this workload's pods."""

    accepted_tcb_statuses: list[TcbStatus] = Field(default_factory=_up_to_date, min_length=1, max_length=6)
    allow_debug: bool = Field(default=False, description="accept TEEs in debug mode (never by default)")


class ServicePort(_Model):
    """A port of the workload's Service."""

    name: str = Field(max_length=15, pattern=_DNS_LABEL)
    port: int = Field(ge=1, le=65535)
    target_port: int | None = Field(default=None, ge=1, le=65535, description="the container port (default: port)")
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class ServiceSpec(_Model):
    """The workload's Service (it always also exposes the EPS, for outside verifiers)."""

    ports: list[ServicePort] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra=_rules(
            _cel("self.all(p, self.exists_one(q, q.name == p.name))", "service port names must be unique"),
            _cel("self.all(p, self.exists_one(q, q.port == p.port))", "service port numbers must be unique"),
            _cel(
                f"self.all(p, !p.name.startsWith('{RESERVED_PREFIX}') && p.port != {EPS_PORT})",
                f"port {EPS_PORT} and port names starting with {RESERVED_PREFIX} are reserved for the EPS",
            ),
        ),
    )


class ConfidentialWorkloadSpec(_Model):
    """A workload run in a TEE, attested against a published baseline, given keys only after attestation."""

    tee: Tee = Field(description="tdx, snp, or sim (the simulated TEE, for development)")
    baseline: str = Field(
        max_length=253, pattern=_BASELINE, description="the baseline the workload was built from: ID or name@version"
    )
    initdata: str = Field(
        min_length=1,
        max_length=65536,
        description="the initdata document (TOML) the baseline measured; its digest is MRCONFIGID / HOST_DATA",
    )
    template: PodTemplate
    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    runtime_class_name: str | None = Field(
        default=None, max_length=253, description="the Kata runtime class (default: the operator's for the TEE)"
    )
    keys: dict[str, Annotated[str, Field(max_length=253)]] = Field(
        default_factory=dict,
        max_length=32,
        description="TKS key ID -> file path in the in-memory keys volume",
        json_schema_extra=_rules(
            _cel(f"self.all(k, k.matches('{KEY_ID}'))", "key IDs are lowercase letters, digits, '.', '_' and '-'"),
            _cel(
                f"self.all(k, self[k].matches('{KEY_PATH}'))",
                "key file paths are relative paths inside the keys volume, without '.' or '..' segments",
            ),
            _cel("self.all(k, self.all(j, k == j || self[k] != self[j]))", "two keys cannot share a file path"),
        ),
    )
    attestation: Attestation = Field(default_factory=Attestation)
    service: ServiceSpec = Field(default_factory=ServiceSpec)


ConditionType = Literal["BaselineVerified", "ReferenceValuesRegistered", "KeysBound", "Deployed", "Attested", "Ready"]
CONDITION_TYPES: tuple[ConditionType, ...] = (
    "BaselineVerified",
    "ReferenceValuesRegistered",
    "KeysBound",
    "Deployed",
    "Attested",
    "Ready",
)


class Condition(_Model):
    """One step's outcome, as Kubernetes conditions are written."""

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: str = Field(max_length=64, description="RFC 3339")
    observed_generation: int = Field(default=0, ge=0)


class ConfidentialWorkloadStatus(_Model):
    """What the operator last observed and did."""

    observed_generation: int = Field(default=0, ge=0)
    baseline_id: str = Field(default="", max_length=253)
    replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    attested_replicas: int = Field(default=0, ge=0, description="pods whose agent attested and fetched their keys")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=len(CONDITION_TYPES),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
