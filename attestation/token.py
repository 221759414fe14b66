"""Attestation-result tokens: EAR claims (draft-ietf-rats-ear, AR4SI), signed as ES256/ES384 JWTs.

A token says what RAS appraised and binds the result to the TEE's public key (`cnf.jwk`,
RFC 7800). `verify_token` is the strict, fail-closed check a relying party (the key service)
runs; every refusal is a TokenError with its own `token.*` code.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey
from joserfc.util import urlsafe_b64decode

from teeplane.attestation.appraisal import Appraisal
from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.keyring import CURVES, KeyRing, as_utc
from teeplane.attestation.reference import CHECK_REFERENCE
from teeplane.attestation.tdx import tcb
from teeplane.errors import RefusedError

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
VERIFIER_DEVELOPER = "https://teeplane.io"
DEFAULT_LIFETIME = timedelta(minutes=5)
DEFAULT_LEEWAY = timedelta(seconds=30)
#: Longest token `verify_token` reads; longer input is refused unparsed.
MAX_TOKEN_CHARS = 64 * 1024

# AR4SI trustworthiness claim values (draft-ietf-rats-ar4si, "Specific Claims").
_AFFIRMING = 2  # genuine hardware / recognized instance / approved config, executables / encrypted memory
_KNOWN_VULNERABILITIES = 32  # hardware or configuration: genuine, but with known vulnerabilities
_UNRECOGNIZED_EXECUTABLES = 33
_CONTRAINDICATED = 96  # hardware contraindicated / untrustworthy key / unsupportable config / visible memory
_UNRECOGNIZED_HARDWARE = 97

_TCB_HARDWARE = {
    tcb.UP_TO_DATE: _AFFIRMING,
    tcb.SW_HARDENING_NEEDED: _KNOWN_VULNERABILITIES,
    tcb.CONFIGURATION_NEEDED: _KNOWN_VULNERABILITIES,
    tcb.CONFIGURATION_AND_SW_HARDENING_NEEDED: _KNOWN_VULNERABILITIES,
    tcb.OUT_OF_DATE: _KNOWN_VULNERABILITIES,
    tcb.OUT_OF_DATE_CONFIGURATION_NEEDED: _KNOWN_VULNERABILITIES,
    tcb.REVOKED: _CONTRAINDICATED,
}
_CONFIGURATION_NEEDED = frozenset(
    {tcb.CONFIGURATION_NEEDED, tcb.CONFIGURATION_AND_SW_HARDENING_NEEDED, tcb.OUT_OF_DATE_CONFIGURATION_NEEDED}
)
_TIER_RANK = {"none": 0, "affirming": 1, "warning": 2, "contraindicated": 3}
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenError(RefusedError):
    """An attestation-result token that is refused; 401 on HTTP, as RFC 6750 asks for invalid tokens."""

    http_status = 401

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


@dataclass(frozen=True, slots=True)
class Workload:
    """The workload a token is issued to; `pod` when known."""

    namespace: str
    name: str
    pod: str | None = None


def build_claims(
    appraisal: Appraisal,
    *,
    issuer: str,
    audience: str,
    workload: Workload,
    baseline_id: str | None,
    tee_public_jwk: Mapping[str, Any],
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: datetime,
    verifier_build: str,
    replayed: bool = False,
) -> dict[str, Any]:
    """The EAR claims of a token for a verified appraisal (naive `now` means UTC).

    `replayed` marks evidence recorded earlier, whose report data could not bind a fresh nonce
    (RAS's explicit replay mode): the token says `teeplane.replayed` and is never "affirming".

    Evidence that did not verify gets no token: its first error is raised. The reference values
    matched when `record_reference` recorded a passed `reference.values` check; `baseline_id` (the
    baseline they came from, if any) is only echoed. The trustworthiness vector (AR4SI values;
    absent claims are "no claim"):

    ===================  =====  =====================================================================
    claim                value  when
    ===================  =====  =====================================================================
    hardware             2      real TEE, TCB status UpToDate (or none reported: SEV-SNP)
    hardware             32     TCB SWHardeningNeeded, [OutOfDate]ConfigurationNeeded,
                                ConfigurationAndSWHardeningNeeded, OutOfDate (known vulnerabilities)
    hardware             96     simulated TEE (no hardware protection), or TCB Revoked
    hardware             97     any other TCB status (not recognized)
    instance-identity    2      real TEE: the evidence key chains to the vendor root, not revoked
    instance-identity    96     simulated TEE: the evidence key is a software key
    runtime-opaque       2      real TEE without debug: memory encrypted, opaque to the host
    runtime-opaque       96     simulated TEE or debug: memory visible to the host
    executables          2      the reference values matched
    executables          33     a policy.measurement_mismatch refusal was recorded
    configuration        96     debug enabled
    configuration        32     TCB status calls for a configuration change
    configuration        2      otherwise, when the reference values (MRCONFIGID, attributes) matched
    ===================  =====  =====================================================================

    `ear.status` is the worst tier in the vector, lowered to "warning" when no reference values
    were compared (genuine hardware running unappraised code is not affirmed) and to
    "contraindicated" when the appraisal policy refused the evidence. A simulated TEE is
    therefore never "affirming".
    """
    if appraisal.errors:
        raise appraisal.errors[0]
    if lifetime < timedelta(seconds=1):
        raise ValueError("the token lifetime must be at least a second")
    if not _is_public_jwk(tee_public_jwk):
        raise EvidenceFormatError(
            Code.RUNTIME_DATA_MALFORMED, "the TEE public key is not a public JWK", where="runtime_data.tee_pubkey"
        )
    issued = int(as_utc(now).timestamp())
    vector = _trustworthiness_vector(appraisal)
    return {
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": b64url_encode(secrets.token_bytes(16)),
        "eat_profile": EAR_PROFILE,
        "ear.verifier-id": {"developer": VERIFIER_DEVELOPER, "build": verifier_build},
        "cnf": {"jwk": dict(tee_public_jwk)},
        "submods": {
            appraisal.tee: {
                "ear.status": _status(appraisal, vector, replayed),
                "ear.trustworthiness-vector": vector,
                "teeplane.measurements": dict(appraisal.measurements),
                "teeplane.tcb-status": appraisal.tcb_status,
                "teeplane.advisory-ids": list(appraisal.advisory_ids),
                "teeplane.simulated": appraisal.simulated,
                "teeplane.debug": appraisal.debug,
                "teeplane.workload": {"namespace": workload.namespace, "name": workload.name, "pod": workload.pod},
                "teeplane.baseline-id": baseline_id,
                "teeplane.replayed": replayed,
            }
        },
    }


def _trustworthiness_vector(appraisal: Appraisal) -> dict[str, int]:
    real = not appraisal.simulated
    if not real:
        hardware = _CONTRAINDICATED
    elif appraisal.tcb_status is None:
        hardware = _AFFIRMING
    else:
        hardware = _TCB_HARDWARE.get(appraisal.tcb_status, _UNRECOGNIZED_HARDWARE)
    vector = {
        "hardware": hardware,
        "instance-identity": _AFFIRMING if real else _CONTRAINDICATED,
        "runtime-opaque": _AFFIRMING if real and not appraisal.debug else _CONTRAINDICATED,
    }
    mismatch = any(e.code == Code.POLICY_MEASUREMENT_MISMATCH for e in appraisal.policy_errors)
    matched = not mismatch and any(c.name == CHECK_REFERENCE and c.ok for c in appraisal.checks)
    if mismatch:
        vector["executables"] = _UNRECOGNIZED_EXECUTABLES
    elif matched:
        vector["executables"] = _AFFIRMING
    if appraisal.debug:
        vector["configuration"] = _CONTRAINDICATED
    elif appraisal.tcb_status in _CONFIGURATION_NEEDED:
        vector["configuration"] = _KNOWN_VULNERABILITIES
    elif matched:
        vector["configuration"] = _AFFIRMING
    return vector


def _tier(value: int) -> str:
    """The AR4SI tier of a standard (non-negative) claim value."""
    if value >= 96:
        return "contraindicated"
    if value >= 32:
        return "warning"
    return "affirming" if value >= 2 else "none"


def _status(appraisal: Appraisal, vector: Mapping[str, int], replayed: bool) -> str:
    if appraisal.policy_errors:
        return "contraindicated"
    worst = max((_tier(v) for v in vector.values()), key=_TIER_RANK.__getitem__)
    unproven = replayed or "executables" not in vector
    return "warning" if worst == "affirming" and unproven else worst


def _is_public_jwk(jwk: object) -> bool:
    return isinstance(jwk, Mapping) and isinstance(jwk.get("kty"), str) and not _PRIVATE_JWK_MEMBERS & jwk.keys()


def sign(claims: Mapping[str, Any], keyring: KeyRing) -> str:
    """The claims as a compact JWS signed with the ring's current key (header: alg, kid, typ JWT).

    The token may not outlive the ring's `max_token_lifetime`, the time a retired key stays published.
    """
    iat, exp = claims.get("iat"), claims.get("exp")
    if not (_is_int(iat) and _is_int(exp) and exp - iat <= keyring.max_token_lifetime.total_seconds()):
        raise ValueError("claims need integer iat and exp at most the keyring's max_token_lifetime apart")
    key = keyring.current
    payload = json.dumps(claims, separators=(",", ":"), allow_nan=False)
    return jws.serialize_compact({"alg": key.alg, "kid": key.kid, "typ": "JWT"}, payload, key.jwk, [key.alg])


def verify_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    audience: str,
    issuer: str,
    now: datetime,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> dict[str, Any]:
    """The claims of a token signed by a key in `jwks`, checked as of `now` (naive means UTC).

    Refuses, each with its own TokenError code: a token that is not a compact JWS of JSON
    objects (token.malformed); an alg other than ES256/ES384, `none` and HMAC included, or one
    the key is not published for (token.alg_rejected); a kid not in the JWKS (token.unknown_kid);
    a bad signature (token.signature_invalid); `exp` passed (token.expired); `nbf` or `iat` in
    the future (token.not_yet_valid); another `aud` or `iss`; no public `cnf.jwk`
    (token.cnf_invalid); missing or ill-typed `iat`/`nbf`/`exp` or another `eat_profile`
    (token.claims_invalid); a JWKS entry that is not a P-256/P-384 key named by its RFC 7638
    thumbprint (token.jwks_invalid). `leeway` allows for clock skew.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
        raise TokenError(Code.TOKEN_MALFORMED, "the token is not a JWS compact serialization", where="token")
    header_segment, payload_segment, _ = token.split(".")
    header = _json_object(header_segment, "header")
    alg, kid = _check_header(header)
    key = _find_key(jwks, kid, alg)
    try:
        jws.deserialize_compact(token, key, [alg])
    except BadSignatureError:
        raise TokenError(Code.TOKEN_SIGNATURE_INVALID, f"the signature does not verify under key {kid}") from None
    except (JoseError, ValueError, TypeError):
        raise TokenError(Code.TOKEN_MALFORMED, "the JWS cannot be verified", where="token") from None
    claims = _json_object(payload_segment, "payload")
    _check_claims(claims, audience=audience, issuer=issuer, now=as_utc(now).timestamp(), leeway=leeway.total_seconds())
    return claims


def _json_object(segment: str, where: str) -> dict[str, Any]:
    """A canonical base64url segment holding a UTF-8 JSON object, no duplicate names or NaN/Infinity."""
    try:
        raw = urlsafe_b64decode(segment.encode())
        value = json.loads(raw.decode(), object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise TokenError(Code.TOKEN_MALFORMED, f"the {where} is not a base64url JSON object", where=where)
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """The header's alg and kid; only alg, kid and typ JWT may appear."""
    if "alg" not in header:
        raise TokenError(Code.TOKEN_MALFORMED, "the header has no alg", where="header.alg")
    alg = header["alg"]
    if not isinstance(alg, str) or alg not in CURVES:
        raise TokenError(Code.TOKEN_ALG_REJECTED, "the alg is not ES256 or ES384", where="header.alg")
    if not header.keys() <= _HEADER_MEMBERS or header.get("typ", "JWT") != "JWT":
        raise TokenError(Code.TOKEN_MALFORMED, "the header may hold only alg, kid and typ JWT", where="header")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenError(Code.TOKEN_UNKNOWN_KID, "the header names no kid", where="header.kid")
    return alg, kid


def _find_key(jwks: Mapping[str, Any], kid: str, alg: str) -> ECKey:
    """The public key `kid` names in the JWKS, published for `alg`."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise TokenError(Code.TOKEN_JWKS_INVALID, "the JWKS has no keys list", where="jwks.keys")
    entry = next((k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid), None)
    if entry is None:
        raise TokenError(Code.TOKEN_UNKNOWN_KID, f"no key {kid[:64]!r} in the JWKS", where="header.kid")
    if entry.get("alg") != alg:
        raise TokenError(Code.TOKEN_ALG_REJECTED, f"key {kid} is not published for {alg}", where="header.alg")
    crv, x, y = entry.get("crv"), entry.get("x"), entry.get("y")
    if entry.get("kty") != "EC" or crv != CURVES[alg] or entry.get("use", "sig") != "sig":
        raise TokenError(Code.TOKEN_JWKS_INVALID, f"key {kid} is not an {CURVES[alg]} signing key", where="jwks")
    if not (isinstance(x, str) and isinstance(y, str)):
        raise TokenError(Code.TOKEN_JWKS_INVALID, f"key {kid} has no x and y", where="jwks")
    try:
        key, thumbprint = _public_key(crv, x, y)
    except (JoseError, ValueError, TypeError):
        raise TokenError(Code.TOKEN_JWKS_INVALID, f"key {kid} is not a valid {crv} point", where="jwks") from None
    if thumbprint != kid:
        raise TokenError(Code.TOKEN_JWKS_INVALID, f"key {kid} is not named by its RFC 7638 thumbprint", where="jwks")
    return key


@functools.lru_cache(maxsize=64)
def _public_key(crv: str, x: str, y: str) -> tuple[ECKey, str]:
    """A parsed public key and its thumbprint, cached by the key material itself."""
    key = ECKey.import_key({"kty": "EC", "crv": crv, "x": x, "y": y})
    return key, key.thumbprint()


def _check_claims(claims: Mapping[str, Any], *, audience: str, issuer: str, now: float, leeway: float) -> None:
    iat, nbf, exp = (_int_claim(claims, name) for name in ("iat", "nbf", "exp"))
    if now >= exp + leeway:
        raise TokenError(Code.TOKEN_EXPIRED, "the token has expired", where="exp")
    for name, value in (("nbf", nbf), ("iat", iat)):
        if value > now + leeway:
            raise TokenError(Code.TOKEN_NOT_YET_VALID, f"the token is not valid yet ({name})", where=name)
    if claims.get("iss") != issuer:
        raise TokenError(Code.TOKEN_ISSUER_MISMATCH, f"the token is not issued by {issuer}", where="iss")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise TokenError(Code.TOKEN_AUDIENCE_MISMATCH, f"the token is not for {audience}", where="aud")
    cnf = claims.get("cnf")
    if not (isinstance(cnf, Mapping) and _is_public_jwk(cnf.get("jwk"))):
        raise TokenError(Code.TOKEN_CNF_INVALID, "the token binds no public key (cnf.jwk)", where="cnf.jwk")
    if claims.get("eat_profile") != EAR_PROFILE:
        raise TokenError(Code.TOKEN_CLAIMS_INVALID, f"eat_profile is not {EAR_PROFILE}", where="eat_profile")


def _int_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not _is_int(value):
        raise TokenError(Code.TOKEN_CLAIMS_INVALID, f"{name} is missing or not an integer", where=name)
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
