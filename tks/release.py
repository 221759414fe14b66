"""The Key Broker's decision: may the TEE an attestation-result token names receive a key?

`check_release` is pure: it reads claims that `teeplane.attestation.token.verify_token` already
checked (signature, lifetime, audience, `cnf.jwk`) and applies a key's ReleasePolicy to them.
Every refusal is a ReleaseRefused whose code names the policy clause that failed and whose
`where` is the claim path.

How EAR status is read (see `teeplane.attestation.token.build_claims`):

- "contraindicated" is refused, with one exception. Simulated evidence always sets `hardware`,
  `instance-identity` and `runtime-opaque` to 96, so its status is contraindicated whatever
  else is true. When the policy sets `allow_simulated`, those three claims are discounted and
  the rest of the vector (`executables`, `configuration`) must hold no contraindication (debug,
  for one, sets `configuration` to 96). The `hardware` claim it discounts also carries the TCB
  status, which the `tcb_statuses` clause checks on its own. RAS signs no token for evidence its
  appraisal policy refused, so a policy refusal never hides behind simulation.
- "warning" is not refused as such: its causes are each a clause here. A TCB status other than
  UpToDate is the `tcb_statuses` clause; replayed evidence is always refused
  (`release.replayed_evidence`: it proves no fresh TEE holds `cnf.jwk`, and no policy field
  admits it); measurements not matched against reference values fail the baseline clause.
- The baseline clause needs a `teeplane.baseline-id` and `executables` 2 (the reference values
  that baseline produced matched), even with `any_baseline`: it admits any baseline, not
  unappraised code.
- A missing TCB status passes only for SEV-SNP, which reports none.

The key version is checked last, so an unauthorised caller learns nothing about a key's versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from teeplane.errors import RefusedError
from teeplane.tks.models import ReleasePolicy

_STATUSES = frozenset({"affirming", "warning", "contraindicated"})
#: The trustworthiness claims a simulated TEE always sets to 96.
_SIMULATION_CLAIMS = frozenset({"hardware", "instance-identity", "runtime-opaque"})
_AFFIRMING = 2
_CONTRAINDICATED = 96


class ReleaseCode(StrEnum):
    """Stable codes of release refusals."""

    CLAIMS_INVALID = "release.claims_invalid"
    TEE_NOT_ALLOWED = "release.tee_not_allowed"
    WORKLOAD_NOT_ALLOWED = "release.workload_not_allowed"
    BASELINE_NOT_ALLOWED = "release.baseline_not_allowed"
    REPLAYED_EVIDENCE = "release.replayed_evidence"
    SIMULATED_NOT_ALLOWED = "release.simulated_not_allowed"
    TCB_STATUS_NOT_ALLOWED = "release.tcb_status_not_allowed"
    STATUS_CONTRAINDICATED = "release.status_contraindicated"
    VERSION_UNKNOWN = "release.version_unknown"
    VERSION_NOT_LATEST = "release.version_not_latest"
    TEE_KEY_UNSUPPORTED = "release.tee_key_unsupported"
    JWE_INVALID = "release.jwe_invalid"


class ReleaseRefused(RefusedError):  # noqa: N818 - the name callers match on
    """A key release the policy (or the TEE key) does not allow; `where` is the claim path."""

    def __init__(self, code: ReleaseCode, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


@dataclass(frozen=True, slots=True)
class ReleaseGrant:
    """A release the policy allows: which version of which key, wrapped to which TEE key."""

    key_id: str
    version: int
    tee_jwk: dict[str, Any]
    tee: str
    workload: str


@dataclass(frozen=True, slots=True)
class _Submod:
    """The claims of the one submodule a release reads, shape-checked."""

    path: str
    tee: str
    status: str
    vector: dict[str, int]
    namespace: str
    name: str
    baseline_id: str | None
    tcb_status: str | None
    simulated: bool
    replayed: bool


def check_release(
    claims: Mapping[str, Any],
    policy: ReleasePolicy,
    *,
    key_id: str,
    requested_version: int | None,
    latest_version: int,
) -> ReleaseGrant:
    """The grant for verified token `claims` under `policy`, or ReleaseRefused naming the failed clause.

    The version is `requested_version`, or the latest when none is asked for; versions run
    from 1 to `latest_version`.
    """
    if latest_version < 1:
        raise ValueError("latest_version must be at least 1")
    cnf = claims.get("cnf")
    jwk = cnf.get("jwk") if isinstance(cnf, Mapping) else None
    if not isinstance(jwk, Mapping):
        raise ReleaseRefused(ReleaseCode.CLAIMS_INVALID, "the token binds no TEE key", where="cnf.jwk")
    sub = _submod(claims)
    _check_identity(sub, policy)
    _check_evidence(sub, policy)
    return ReleaseGrant(
        key_id=key_id,
        version=_version(policy, requested_version, latest_version),
        tee_jwk=dict(jwk),
        tee=sub.tee,
        workload=f"{sub.namespace}/{sub.name}",
    )


def _check_identity(sub: _Submod, policy: ReleasePolicy) -> None:
    """Which TEE type, workload and baseline the token speaks for."""
    if sub.tee not in policy.tee_types:
        raise ReleaseRefused(ReleaseCode.TEE_NOT_ALLOWED, f"TEE type {sub.tee!r} is not allowed", where=sub.path)
    if f"{sub.namespace}/{sub.name}" not in policy.workloads:
        raise ReleaseRefused(
            ReleaseCode.WORKLOAD_NOT_ALLOWED,
            f"workload {sub.namespace}/{sub.name} is not allowed",
            where=f"{sub.path}.teeplane.workload",
        )
    if sub.baseline_id is None or not (policy.any_baseline or sub.baseline_id in policy.baselines):
        raise ReleaseRefused(
            ReleaseCode.BASELINE_NOT_ALLOWED,
            f"baseline {sub.baseline_id} is not allowed",
            where=f"{sub.path}.teeplane.baseline-id",
        )
    if sub.vector.get("executables") != _AFFIRMING:
        raise ReleaseRefused(
            ReleaseCode.BASELINE_NOT_ALLOWED,
            "the measurements were not matched against the baseline's reference values",
            where=f"{sub.path}.ear.trustworthiness-vector.executables",
        )


def _check_evidence(sub: _Submod, policy: ReleasePolicy) -> None:
    """How much the evidence behind the token can be trusted."""
    if sub.replayed:
        raise ReleaseRefused(
            ReleaseCode.REPLAYED_EVIDENCE,
            "replayed evidence never receives keys",
            where=f"{sub.path}.teeplane.replayed",
        )
    if sub.simulated and not policy.allow_simulated:
        raise ReleaseRefused(
            ReleaseCode.SIMULATED_NOT_ALLOWED,
            "the evidence comes from a simulated TEE",
            where=f"{sub.path}.teeplane.simulated",
        )
    # SEV-SNP reports no TCB status (its VCEK chain and REPORTED_TCB checks stand in); TDX always does.
    tcb_ok = sub.tee == "snp" if sub.tcb_status is None else sub.tcb_status in policy.tcb_statuses
    if not tcb_ok:
        raise ReleaseRefused(
            ReleaseCode.TCB_STATUS_NOT_ALLOWED,
            f"TCB status {sub.tcb_status} is not allowed",
            where=f"{sub.path}.teeplane.tcb-status",
        )
    if sub.status == "contraindicated" and not (sub.simulated and _only_simulation(sub.vector)):
        raise ReleaseRefused(
            ReleaseCode.STATUS_CONTRAINDICATED,
            "the attestation result is contraindicated",
            where=f"{sub.path}.ear.status",
        )


def _only_simulation(vector: Mapping[str, int]) -> bool:
    """No claim is contraindicated but those a simulated TEE always contraindicates."""
    return not any(v >= _CONTRAINDICATED for k, v in vector.items() if k not in _SIMULATION_CLAIMS)


def _version(policy: ReleasePolicy, requested: int | None, latest: int) -> int:
    if requested is None:
        return latest
    if not 1 <= requested <= latest:
        raise ReleaseRefused(ReleaseCode.VERSION_UNKNOWN, f"the key has no version {requested}", where="version")
    if policy.require_latest_version and requested != latest:
        raise ReleaseRefused(
            ReleaseCode.VERSION_NOT_LATEST, f"only the latest version ({latest}) is released", where="version"
        )
    return requested


def _submod(claims: Mapping[str, Any]) -> _Submod:
    """The one submodule of the claims, every member a release reads checked for type."""
    submods = claims.get("submods")
    if not isinstance(submods, Mapping) or len(submods) != 1:
        raise _invalid("submods", "the token must hold exactly one submodule")
    ((tee, sub),) = submods.items()
    path = f"submods.{tee}"
    if not isinstance(sub, Mapping):
        raise _invalid(path, "the submodule is not an object")
    workload = sub.get("teeplane.workload")
    if not isinstance(workload, Mapping):
        raise _invalid(f"{path}.teeplane.workload", "the workload is not an object")
    vector = sub.get("ear.trustworthiness-vector")
    if not (isinstance(vector, Mapping) and all(_is_int(v) for v in vector.values())):
        raise _invalid(f"{path}.ear.trustworthiness-vector", "the trustworthiness vector is not claims to integers")
    status = sub.get("ear.status")
    if not (isinstance(status, str) and status in _STATUSES):
        raise _invalid(f"{path}.ear.status", "ear.status is not affirming, warning or contraindicated")
    return _Submod(
        path=path,
        tee=tee,
        status=status,
        vector=dict(vector),
        namespace=_typed(workload, "namespace", str, f"{path}.teeplane.workload"),
        name=_typed(workload, "name", str, f"{path}.teeplane.workload"),
        baseline_id=_typed(sub, "teeplane.baseline-id", str | None, path),
        tcb_status=_typed(sub, "teeplane.tcb-status", str | None, path),
        simulated=_typed(sub, "teeplane.simulated", bool, path),
        replayed=_typed(sub, "teeplane.replayed", bool, path),
    )


def _typed(obj: Mapping[str, Any], name: str, kind: Any, path: str) -> Any:
    """Member `name` of `obj`, which must be present and an instance of `kind`."""
    if name not in obj or not isinstance(obj[name], kind):
        raise _invalid(f"{path}.{name}", f"{name} is missing or of the wrong type")
    return obj[name]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid(where: str, message: str) -> ReleaseRefused:
    return ReleaseRefused(ReleaseCode.CLAIMS_INVALID, message, where=where)
