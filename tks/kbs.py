"""The Confidential Containers KBS protocol (RCAR), as TKS speaks it: pure message handling.

Request -> Challenge -> Attestation -> Response, per Trustee's KBS attestation protocol, so the
Confidential Containers attestation agent fetches keys from TKS unchanged:

- `POST /kbs/v0/auth` takes a Request (`version`, `tee`, `extra-params`) and answers a Challenge
  whose nonce is a RAS nonce, with `selected-hash-algorithm: sha384`.
- `POST /kbs/v0/attest` takes an Attestation: protocol 0.4 (`runtime-data` {nonce, tee-pubkey},
  `tee-evidence` {primary_evidence, additional_evidence}) or the earlier form (`tee-pubkey`,
  `tee-evidence`). The evidence goes to RAS with the `kbs` binding; the answer is {"token"}.
- `GET /kbs/v0/resource/<repository>/<type>/<tag>` releases key `<repository>.<type>.<tag>`
  as a JWE in flattened JSON serialization (RFC 7516, section 7.2.2) for the session's TEE key.

The session lives in the `kbs-session-id` cookie and needs no server state, so any replica can
serve any step: before attestation it holds the nonce, TEE type and workload (RAS checks the
nonce's MAC and freshness, and the evidence against the workload's reference values, so nothing
in it is trusted); afterwards it holds the attestation-result token itself, verified on every
resource request like a bearer token.

Which workload a guest is comes from the URL: `/workloads/<namespace>/<name>/kbs/v0/...` (the
guest's KBS URL, part of its measured initdata), or from `extra-params.workload` at `/kbs/v0`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from teeplane.attestation.binding import b64url_decode, b64url_encode
from teeplane.attestation.ras.models import AttestRequest, WorkloadIdentity
from teeplane.errors import InputError, RefusedError
from teeplane.tks.models import KEY_ID

COOKIE = "kbs-session-id"
HASH_ALGORITHM = "sha384"
#: The TEE names of the KBS protocol TEEPlane verifies over it, and the RAS TEE type of each.
#: (SEV-SNP goes through TEEPlane's own agent: the attestation agent's SNP evidence, a JSON
#: rendering of the report, is not read here yet.)
TEES: dict[str, Literal["tdx"]] = {"tdx": "tdx", "intel-tdx": "tdx"}


class KbsUnauthorized(RefusedError):  # noqa: N818 - the name callers match on
    """No (or no valid) KBS session: the guest must run the handshake (again)."""

    http_status = 401


class KbsRequest(BaseModel):
    """The KBS `Request` that opens a handshake."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    version: str = Field(max_length=32)
    tee: str = Field(max_length=32)
    extra_params: dict[str, Any] | str = Field(default="", alias="extra-params")


class KbsChallenge(BaseModel):
    """The KBS `Challenge`: the nonce to bind, and the hash to bind it with."""

    model_config = ConfigDict(populate_by_name=True)

    nonce: str
    extra_params: dict[str, Any] = Field(alias="extra-params")


class Session(BaseModel):
    """A handshake between auth and attest (the cookie's content before attestation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nonce: str
    tee: Literal["tdx"]
    workload: WorkloadIdentity


def challenge_for(nonce: str) -> KbsChallenge:
    """The Challenge for a RAS nonce."""
    return KbsChallenge.model_validate({"nonce": nonce, "extra-params": {"selected-hash-algorithm": HASH_ALGORITHM}})


def open_session(request: KbsRequest, nonce: str, workload: WorkloadIdentity | None) -> Session:
    """The session a Request starts: its TEE type and workload, checked."""
    tee = TEES.get(request.tee)
    if tee is None:
        raise InputError("kbs.tee_unsupported", f"TEE {request.tee!r} is not supported over KBS (use tdx)", where="tee")
    if workload is None:
        named = request.extra_params.get("workload") if isinstance(request.extra_params, dict) else None
        workload = _workload_from_text(named)
    return Session(nonce=nonce, tee=tee, workload=workload)


def _workload_from_text(named: object) -> WorkloadIdentity:
    namespace, _, name = named.partition("/") if isinstance(named, str) else ("", "", "")
    try:
        return WorkloadIdentity(namespace=namespace, name=name)
    except ValidationError:
        raise InputError(
            "kbs.workload_unknown",
            "which workload is this? use the KBS URL /workloads/<namespace>/<name>, "
            "or extra-params.workload = '<namespace>/<name>'",
            where="extra-params.workload",
        ) from None


def session_cookie(session: Session) -> str:
    """The cookie value that carries a handshake (no dots, unlike a token)."""
    return b64url_encode(session.model_dump_json().encode())


def read_session(cookie: str | None) -> Session:
    """The handshake a cookie carries, or KbsUnauthorized."""
    if not cookie or "." in cookie:
        raise KbsUnauthorized("kbs.session_missing", "no KBS handshake in progress: POST /kbs/v0/auth first")
    try:
        return Session.model_validate_json(b64url_decode(cookie, COOKIE))
    except (ValidationError, InputError):
        raise KbsUnauthorized("kbs.session_invalid", "the kbs-session-id cookie is not a KBS handshake") from None


def attest_request(session: Session, attestation: dict[str, Any]) -> AttestRequest:
    """The RAS request for a KBS Attestation in this session (nonce and evidence checked for shape)."""
    runtime = attestation.get("runtime-data")
    if isinstance(runtime, dict):
        runtime_data = {"nonce": runtime.get("nonce"), "tee-pubkey": runtime.get("tee-pubkey")}
        evidence = attestation.get("tee-evidence")
        primary = evidence.get("primary_evidence") if isinstance(evidence, dict) else None
    else:
        runtime_data = {"nonce": session.nonce, "tee-pubkey": attestation.get("tee-pubkey")}
        primary = attestation.get("tee-evidence")
    if runtime_data["nonce"] != session.nonce:
        raise RefusedError("kbs.nonce_mismatch", "runtime-data.nonce is not this session's nonce", where="runtime-data")
    if not isinstance(runtime_data["tee-pubkey"], dict):
        raise InputError("kbs.attestation_invalid", "the TEE public key is missing", where="runtime-data.tee-pubkey")
    quote, event_log = _tdx_evidence(primary)
    try:
        return AttestRequest(
            nonce=session.nonce,
            tee=session.tee,
            evidence=b64url_encode(quote),
            event_log=b64url_encode(event_log) if event_log else None,
            runtime_data=runtime_data,
            binding="kbs",
            workload=session.workload,
        )
    except ValidationError as exc:
        raise InputError("kbs.attestation_invalid", f"the evidence is not usable: {exc.errors()[0]['msg']}") from None


def _tdx_evidence(primary: object) -> tuple[bytes, bytes | None]:
    """The quote and CCEL event log in the attestation agent's TDX evidence
    (`{"quote": base64, "cc_eventlog": base64 | null}`, as a JSON object or its text)."""
    if isinstance(primary, str):
        try:
            primary = json.loads(primary)
        except ValueError:
            primary = None
    if not isinstance(primary, dict):
        raise InputError("kbs.attestation_invalid", "tee-evidence is not a JSON object", where="tee-evidence")
    event_log = primary.get("cc_eventlog")
    return (
        _standard_b64(primary.get("quote"), "tee-evidence.quote"),
        _standard_b64(event_log, "tee-evidence.cc_eventlog") if event_log else None,
    )


def _standard_b64(value: object, where: str) -> bytes:
    """Bytes from the standard base64 the attestation agent uses (base64url accepted too)."""
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise InputError("kbs.attestation_invalid", f"{where} is missing or not base64", where=where)


def key_for_resource(repository: str, kind: str, tag: str) -> str:
    """The TKS key a KBS resource path names: `<repository>.<type>.<tag>`."""
    key_id = f"{repository}.{kind}.{tag}"
    if not re.fullmatch(KEY_ID, key_id):
        raise InputError("kbs.resource_invalid", f"no TKS key can be named {key_id!r}", where="resource")
    return key_id


def flattened_jwe(compact: str) -> dict[str, str]:
    """A compact JWE as the KBS `Response`: the flattened JSON serialization of the same JWE."""
    protected, encrypted_key, iv, ciphertext, tag = compact.split(".")
    return {"protected": protected, "encrypted_key": encrypted_key, "iv": iv, "ciphertext": ciphertext, "tag": tag}
