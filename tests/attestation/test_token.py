"""Attestation-result tokens: EAR claims, signing-key rotation, and every refusal of the strict verifier."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey

from teeplane.attestation.appraisal import Appraisal, Policy
from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError
from teeplane.attestation.keyring import KeyRing, SigningKey
from teeplane.attestation.reference import CHECK_REFERENCE
from teeplane.attestation.token import (
    EAR_PROFILE,
    TokenError,
    Workload,
    build_claims,
    sign,
    verify_token,
)
from teeplane.errors import InputError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://ras.teeplane.svc"
AUDIENCE = "https://tks.teeplane.svc"
WORKLOAD = Workload("payments", "ledger", "ledger-7d9f-abcde")
TEE_KEY = ECKey.generate_key("P-256").as_dict(private=False)
TCB_STATUSES = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "SomethingNew",
]


def _appraisal(*, reference_matched: bool = True, **fields: Any) -> Appraisal:
    defaults: dict[str, Any] = {"tee": "tdx", "tcb_status": "UpToDate", "measurements": {"mrtd": "ab" * 48}}
    appraisal = Appraisal(**(defaults | fields))
    if reference_matched:
        appraisal.passed(CHECK_REFERENCE, "MRTD")
    return appraisal


def _claims(appraisal: Appraisal | None = None, *, now: datetime = NOW, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "workload": WORKLOAD,
        "baseline_id": "sha256:1f2e",
        "tee_public_jwk": TEE_KEY,
        "now": now,
        "verifier_build": "teeplane 0.1.0",
    }
    return build_claims(appraisal or _appraisal(), **(args | overrides))


def _verify(token: str, jwks: dict[str, Any], *, now: datetime = NOW, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"audience": AUDIENCE, "issuer": ISSUER, "now": now}
    return verify_token(token, jwks, **(args | overrides))


def _refused(code: Code, call: Callable[[], object]) -> TokenError:
    with pytest.raises(TokenError) as caught:
        call()
    assert caught.value.code == code.value, str(caught.value)
    return caught.value


def _submod(claims: dict[str, Any]) -> dict[str, Any]:
    (submod,) = claims["submods"].values()
    result: dict[str, Any] = submod
    return result


def _segment(value: dict[str, Any] | bytes) -> str:
    return b64url_encode(value if isinstance(value, bytes) else json.dumps(value).encode())


def _forge(header: dict[str, Any], claims: dict[str, Any] | bytes, key: SigningKey) -> str:
    """A token signed with `key` under any header and payload, bypassing `sign` and joserfc's checks."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    private = key.jwk.private_key
    assert private is not None
    hash_alg = hashes.SHA256() if key.alg == "ES256" else hashes.SHA384()
    r, s = decode_dss_signature(private.sign(signing_input.encode(), ec.ECDSA(hash_alg)))
    size = (private.curve.key_size + 7) // 8
    return f"{signing_input}.{b64url_encode(r.to_bytes(size, 'big') + s.to_bytes(size, 'big'))}"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


# claims


def test_round_trip(ring: KeyRing) -> None:
    claims = _claims()
    assert _verify(sign(claims, ring), ring.jwks()) == claims


def test_claims_follow_ear() -> None:
    claims = _claims(lifetime=timedelta(minutes=2))
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert claims["iat"] == claims["nbf"] == int(NOW.timestamp())
    assert claims["exp"] == claims["iat"] + 120
    assert len(claims["jti"]) == 22 and claims["jti"] != _claims()["jti"]
    assert claims["eat_profile"] == EAR_PROFILE == "tag:github.com,2023:veraison/ear"
    assert claims["ear.verifier-id"] == {"developer": "https://teeplane.io", "build": "teeplane 0.1.0"}
    assert claims["cnf"] == {"jwk": TEE_KEY}
    assert _submod(claims) == {
        "ear.status": "affirming",
        "ear.trustworthiness-vector": {
            "hardware": 2,
            "instance-identity": 2,
            "runtime-opaque": 2,
            "executables": 2,
            "configuration": 2,
        },
        "teeplane.measurements": {"mrtd": "ab" * 48},
        "teeplane.tcb-status": "UpToDate",
        "teeplane.advisory-ids": [],
        "teeplane.simulated": False,
        "teeplane.debug": False,
        "teeplane.workload": {"namespace": "payments", "name": "ledger", "pod": "ledger-7d9f-abcde"},
        "teeplane.baseline-id": "sha256:1f2e",
        "teeplane.replayed": False,
    }


def test_replayed_evidence_is_never_affirming() -> None:
    """Recorded evidence replayed without a fresh nonce is marked and at most a warning."""
    assert _submod(_claims())["ear.status"] == "affirming"
    replayed = _submod(_claims(replayed=True))
    assert replayed["teeplane.replayed"] is True
    assert replayed["ear.status"] == "warning"


def test_naive_now_means_utc() -> None:
    assert _claims(now=NOW.replace(tzinfo=None))["iat"] == int(NOW.timestamp())


@pytest.mark.parametrize(
    ("tcb_status", "hardware", "configuration", "status"),
    [
        ("UpToDate", 2, 2, "affirming"),
        (None, 2, 2, "affirming"),
        ("SWHardeningNeeded", 32, 2, "warning"),
        ("ConfigurationNeeded", 32, 32, "warning"),
        ("ConfigurationAndSWHardeningNeeded", 32, 32, "warning"),
        ("OutOfDate", 32, 2, "warning"),
        ("OutOfDateConfigurationNeeded", 32, 32, "warning"),
        ("SomethingNew", 97, 2, "contraindicated"),
    ],
)
def test_tcb_status_mapping(tcb_status: str | None, hardware: int, configuration: int, status: str) -> None:
    submod = _submod(_claims(_appraisal(tcb_status=tcb_status, advisory_ids=["INTEL-SA-00837"])))
    vector = submod["ear.trustworthiness-vector"]
    assert (vector["hardware"], vector["configuration"], submod["ear.status"]) == (hardware, configuration, status)
    assert submod["teeplane.advisory-ids"] == ["INTEL-SA-00837"]


def test_debug_is_contraindicated() -> None:
    submod = _submod(_claims(_appraisal(debug=True)))
    assert submod["ear.trustworthiness-vector"]["configuration"] == 96
    assert submod["ear.trustworthiness-vector"]["runtime-opaque"] == 96
    assert submod["ear.status"] == "contraindicated"


def test_without_reference_values_nothing_is_affirmed() -> None:
    submod = _submod(_claims(_appraisal(reference_matched=False)))
    assert "executables" not in submod["ear.trustworthiness-vector"]
    assert "configuration" not in submod["ear.trustworthiness-vector"]
    assert submod["ear.status"] == "warning"


def test_baseline_id_is_only_echoed() -> None:
    submod = _submod(_claims(baseline_id=None))
    assert submod["teeplane.baseline-id"] is None
    assert submod["ear.trustworthiness-vector"]["executables"] == 2
    assert submod["ear.status"] == "affirming"


def test_measurement_mismatch() -> None:
    appraisal = _appraisal(reference_matched=False)
    appraisal.refuse(CHECK_REFERENCE, AppraisalError(Code.POLICY_MEASUREMENT_MISMATCH, "MRTD differs"))
    submod = _submod(_claims(appraisal))
    assert submod["ear.trustworthiness-vector"]["executables"] == 33
    assert "configuration" not in submod["ear.trustworthiness-vector"]
    assert submod["ear.status"] == "contraindicated"


def test_policy_refusal_is_contraindicated() -> None:
    appraisal = _appraisal(tcb_status="SWHardeningNeeded")
    appraisal.apply_policy(Policy())
    assert _submod(_claims(appraisal))["ear.status"] == "contraindicated"


@pytest.mark.parametrize("tcb_status", [*TCB_STATUSES, None])
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("reference_matched", [True, False])
@pytest.mark.parametrize("allow_simulated", [False, True])
def test_simulated_is_never_affirming(
    tcb_status: str | None, debug: bool, reference_matched: bool, allow_simulated: bool
) -> None:
    appraisal = _appraisal(simulated=True, tcb_status=tcb_status, debug=debug, reference_matched=reference_matched)
    appraisal.apply_policy(
        Policy(accepted_tcb_statuses=frozenset(TCB_STATUSES), allow_debug=True, allow_simulated=allow_simulated)
    )
    submod = _submod(_claims(appraisal))
    assert submod["ear.status"] == "contraindicated"
    assert submod["ear.trustworthiness-vector"]["hardware"] == 96
    assert submod["teeplane.simulated"] is True


def test_unverified_evidence_gets_no_claims() -> None:
    appraisal = _appraisal()
    appraisal.failed("quote.signature", AppraisalError(Code.QUOTE_SIGNATURE_INVALID, "bad"))
    with pytest.raises(AppraisalError) as caught:
        _claims(appraisal)
    assert caught.value.code == Code.QUOTE_SIGNATURE_INVALID.value


def test_private_tee_key_refused() -> None:
    private = ECKey.generate_key("P-256").as_dict(private=True)
    with pytest.raises(EvidenceFormatError) as caught:
        _claims(tee_public_jwk=private)
    assert caught.value.code == Code.RUNTIME_DATA_MALFORMED.value


# keys, rotation, persistence


def test_jwks_publishes_public_keys_named_by_thumbprint(ring: KeyRing) -> None:
    (jwk,) = ring.jwks()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (jwk["crv"], jwk["alg"], jwk["use"]) == ("P-256", "ES256", "sig")
    assert jwk["kid"] == ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")}).thumbprint()


def test_rotation_and_prune(ring: KeyRing) -> None:
    old_token = sign(_claims(), ring)
    old_kid = ring.current.kid
    new = ring.rotate(NOW)
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old_kid]
    assert _verify(old_token, ring.jwks())["iss"] == ISSUER
    assert jws.extract_compact(sign(_claims(), ring).encode()).headers()["kid"] == new.kid

    assert ring.prune(NOW + ring.max_token_lifetime - timedelta(seconds=1)) == []
    assert _verify(old_token, ring.jwks())["iss"] == ISSUER
    assert ring.prune(NOW + ring.max_token_lifetime) == [old_kid]
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]
    _refused(Code.TOKEN_UNKNOWN_KID, lambda: _verify(old_token, ring.jwks()))


def test_sign_refuses_tokens_outliving_the_retention(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="max_token_lifetime"):
        sign(_claims(lifetime=ring.max_token_lifetime + timedelta(seconds=1)), ring)


def test_es384() -> None:
    ring = KeyRing.generate("ES384")
    token = sign(_claims(), ring)
    assert jws.extract_compact(token.encode()).headers()["alg"] == "ES384"
    assert ring.jwks()["keys"][0]["crv"] == "P-384"
    assert _verify(token, ring.jwks())["iss"] == ISSUER


@pytest.mark.parametrize("alg", ["ES512", "RS256", "HS256", "none"])
def test_only_es256_and_es384_keys(alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        KeyRing.generate(alg)


def test_rotation_to_another_algorithm(ring: KeyRing) -> None:
    old_token = sign(_claims(), ring)
    ring.rotate(NOW, "ES384")
    new_token = sign(_claims(), ring)
    assert [k["alg"] for k in ring.jwks()["keys"]] == ["ES384", "ES256"]
    for token in (old_token, new_token):
        assert _verify(token, ring.jwks())["iss"] == ISSUER


def test_persistence_round_trip(ring: KeyRing) -> None:
    old_token = sign(_claims(), ring)
    ring.rotate(NOW, "ES384")
    new_token = sign(_claims(), ring)
    loaded = KeyRing.from_json(ring.to_json())
    assert loaded == ring
    assert loaded.jwks() == ring.jwks()
    for token in (old_token, new_token, sign(_claims(), loaded)):
        assert _verify(token, loaded.jwks())["iss"] == ISSUER
    assert loaded.prune(NOW + loaded.max_token_lifetime) == [ring.retired[0].key.kid]


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: "not json",
        lambda s: s.replace('"version":1', '"version":2'),
        lambda s: s.replace('"alg":"ES256"', '"alg":"ES384"'),
        lambda s: s.replace('"retired":[', '"retired":[{"alg":"ES256","jwk":{}},'),
        lambda s: s.replace('"max_token_lifetime":"PT10M"', '"max_token_lifetime":"-PT1M"'),
    ],
)
def test_damaged_keyring_is_refused_without_echoing_keys(ring: KeyRing, damage: Callable[[str], str]) -> None:
    text = ring.to_json()
    with pytest.raises(InputError) as caught:
        KeyRing.from_json(damage(text))
    assert caught.value.code == Code.KEYRING_MALFORMED.value
    assert ring.current.jwk.as_dict(private=True)["d"] not in str(caught.value)


# refusals


def test_malformed(ring: KeyRing) -> None:
    token = sign(_claims(), ring)
    header, payload, signature = token.split(".")
    for bad in ["", "abc", token + ".x", token.replace(".", "", 1), token + "=", f"{header}.{payload}!.{signature}"]:
        _refused(Code.TOKEN_MALFORMED, lambda bad=bad: _verify(bad, ring.jwks()))
    for bad_header in [b"[]", b"\xff", b'{"alg":"ES256","alg":"ES256"}', b'{"kid":"x"}']:
        _refused(
            Code.TOKEN_MALFORMED, lambda h=bad_header: _verify(f"{_segment(h)}.{payload}.{signature}", ring.jwks())
        )
    _refused(Code.TOKEN_MALFORMED, lambda: _verify("a" * 70_000 + ".a.a", ring.jwks()))


@pytest.mark.parametrize("extra", [{"crit": ["exp"]}, {"jwk": TEE_KEY}, {"typ": "at+jwt"}])
def test_header_members_are_allowlisted(ring: KeyRing, extra: dict[str, Any]) -> None:
    header = {"alg": "ES256", "kid": ring.current.kid, "typ": "JWT"} | extra
    _refused(Code.TOKEN_MALFORMED, lambda: _verify(_forge(header, _claims(), ring.current), ring.jwks()))


def test_alg_none(ring: KeyRing) -> None:
    unsigned = f"{_segment({'alg': 'none', 'kid': ring.current.kid, 'typ': 'JWT'})}.{_segment(_claims())}."
    _refused(Code.TOKEN_ALG_REJECTED, lambda: _verify(unsigned, ring.jwks()))
    _refused(Code.TOKEN_ALG_REJECTED, lambda: _verify(unsigned + "c2ln", ring.jwks()))


def test_hmac_with_the_public_key_as_secret(ring: KeyRing) -> None:
    """The classic key-confusion forgery: HS256 keyed with the verifier's public key."""
    signing_input = f"{_segment({'alg': 'HS256', 'kid': ring.current.kid, 'typ': 'JWT'})}.{_segment(_claims())}"
    for secret in (ring.current.jwk.as_pem(private=False), json.dumps(ring.jwks()["keys"][0]).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        _refused(Code.TOKEN_ALG_REJECTED, lambda mac=mac: _verify(f"{signing_input}.{b64url_encode(mac)}", ring.jwks()))


@pytest.mark.parametrize("alg", ["ES512", "RS256", "PS256", "EdDSA", "es256", 256, None, ["ES256"]])
def test_other_algs(ring: KeyRing, alg: object) -> None:
    token = f"{_segment({'alg': alg, 'kid': ring.current.kid})}.{_segment(_claims())}.c2ln"
    _refused(Code.TOKEN_ALG_REJECTED, lambda: _verify(token, ring.jwks()))


def test_alg_the_key_is_not_published_for(ring: KeyRing) -> None:
    header = {"alg": "ES384", "kid": ring.current.kid, "typ": "JWT"}
    es384 = SigningKey.generate("ES384")
    _refused(Code.TOKEN_ALG_REJECTED, lambda: _verify(_forge(header, _claims(), es384), ring.jwks()))


def test_unknown_kid(ring: KeyRing) -> None:
    other = KeyRing.generate()
    _refused(Code.TOKEN_UNKNOWN_KID, lambda: _verify(sign(_claims(), other), ring.jwks()))
    no_kid = _forge({"alg": "ES256", "typ": "JWT"}, _claims(), ring.current)
    _refused(Code.TOKEN_UNKNOWN_KID, lambda: _verify(no_kid, ring.jwks()))


def test_tampered_payload(ring: KeyRing) -> None:
    header, _, signature = sign(_claims(), ring).split(".")
    tampered = _claims()
    _submod(tampered)["teeplane.workload"]["namespace"] = "attacker"
    _refused(Code.TOKEN_SIGNATURE_INVALID, lambda: _verify(f"{header}.{_segment(tampered)}.{signature}", ring.jwks()))


def test_bad_signatures(ring: KeyRing) -> None:
    header, payload, signature = sign(_claims(), ring).split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    for bad in ["", flipped, signature[:-4], signature + "AAAA"]:
        _refused(Code.TOKEN_SIGNATURE_INVALID, lambda bad=bad: _verify(f"{header}.{payload}.{bad}", ring.jwks()))


def test_another_key_claiming_our_kid(ring: KeyRing) -> None:
    header = {"alg": "ES256", "kid": ring.current.kid, "typ": "JWT"}
    _refused(
        Code.TOKEN_SIGNATURE_INVALID,
        lambda: _verify(_forge(header, _claims(), KeyRing.generate().current), ring.jwks()),
    )


def test_jwks_entry_not_named_by_its_thumbprint(ring: KeyRing) -> None:
    attacker = KeyRing.generate()
    lying = {"keys": [attacker.current.public_jwk() | {"kid": ring.current.kid}]}
    header = {"alg": "ES256", "kid": ring.current.kid, "typ": "JWT"}
    _refused(Code.TOKEN_JWKS_INVALID, lambda: _verify(_forge(header, _claims(), attacker.current), lying))


@pytest.mark.parametrize(
    "damage",
    [
        lambda jwk: {"keys": "nope"},
        lambda jwk: {"keys": [jwk | {"crv": "P-384"}]},
        lambda jwk: {"keys": [jwk | {"kty": "RSA"}]},
        lambda jwk: {"keys": [jwk | {"use": "enc"}]},
        lambda jwk: {"keys": [jwk | {"x": jwk["y"]}]},
        lambda jwk: {"keys": [jwk | {"x": 5}]},
    ],
)
def test_invalid_jwks(ring: KeyRing, damage: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    token = sign(_claims(), ring)
    _refused(Code.TOKEN_JWKS_INVALID, lambda: _verify(token, damage(ring.jwks()["keys"][0])))


def test_expiry_with_leeway(ring: KeyRing) -> None:
    claims = _claims()
    token = sign(claims, ring)
    expiry = datetime.fromtimestamp(claims["exp"], UTC)
    assert _verify(token, ring.jwks(), now=expiry + timedelta(seconds=29))
    error = _refused(Code.TOKEN_EXPIRED, lambda: _verify(token, ring.jwks(), now=expiry + timedelta(seconds=30)))
    assert error.where == "exp" and error.http_status == 401 and error.exit_code == 1
    _refused(Code.TOKEN_EXPIRED, lambda: _verify(token, ring.jwks(), now=expiry, leeway=timedelta(0)))


def test_not_yet_valid(ring: KeyRing) -> None:
    token = sign(_claims(), ring)
    assert _verify(token, ring.jwks(), now=NOW - timedelta(seconds=30))
    _refused(Code.TOKEN_NOT_YET_VALID, lambda: _verify(token, ring.jwks(), now=NOW - timedelta(seconds=31)))
    future_iat = _claims() | {"nbf": int(NOW.timestamp()), "iat": int(NOW.timestamp()) + 120}
    error = _refused(Code.TOKEN_NOT_YET_VALID, lambda: _verify(sign(future_iat, ring), ring.jwks()))
    assert error.where == "iat"


def test_wrong_audience_and_issuer(ring: KeyRing) -> None:
    token = sign(_claims(), ring)
    _refused(Code.TOKEN_AUDIENCE_MISMATCH, lambda: _verify(token, ring.jwks(), audience="https://other"))
    _refused(Code.TOKEN_ISSUER_MISMATCH, lambda: _verify(token, ring.jwks(), issuer="https://evil"))
    listed = sign(_claims() | {"aud": ["https://other", AUDIENCE]}, ring)
    assert _verify(listed, ring.jwks())["aud"] == ["https://other", AUDIENCE]
    _refused(Code.TOKEN_AUDIENCE_MISMATCH, lambda: _verify(sign(_claims() | {"aud": None}, ring), ring.jwks()))


@pytest.mark.parametrize(
    "cnf",
    [None, {}, {"jwk": None}, {"jwk": {"crv": "P-256"}}, {"jwk": ECKey.generate_key("P-256").as_dict(private=True)}],
)
def test_cnf_must_hold_a_public_jwk(ring: KeyRing, cnf: dict[str, Any] | None) -> None:
    claims = {k: v for k, v in _claims().items() if k != "cnf"} | ({"cnf": cnf} if cnf is not None else {})
    _refused(Code.TOKEN_CNF_INVALID, lambda: _verify(sign(claims, ring), ring.jwks()))


@pytest.mark.parametrize("damage", [{"exp": None}, {"iat": "1"}, {"nbf": True}, {"eat_profile": "tag:other"}])
def test_invalid_claims(ring: KeyRing, damage: dict[str, Any]) -> None:
    header = {"alg": "ES256", "kid": ring.current.kid, "typ": "JWT"}
    token = _forge(header, _claims() | damage, ring.current)
    _refused(Code.TOKEN_CLAIMS_INVALID, lambda: _verify(token, ring.jwks()))


def test_payload_must_be_a_json_object(ring: KeyRing) -> None:
    header = {"alg": "ES256", "kid": ring.current.kid, "typ": "JWT"}
    for payload in [b"[1]", b'{"a":NaN}', b'{"a":1,"a":2}', b"\xff"]:
        token = _forge(header, payload, ring.current)
        _refused(Code.TOKEN_MALFORMED, lambda token=token: _verify(token, ring.jwks()))


# fuzzing: anything that is not a valid token is refused with a typed error


FUZZ_RING = KeyRing.generate()
FUZZ_TOKEN = sign(_claims(), FUZZ_RING)
FUZZ = settings(max_examples=300, deadline=None)


def _typed_refusal(token: str) -> None:
    with pytest.raises(TokenError) as caught:
        _verify(token, FUZZ_RING.jwks())
    assert caught.value.code.startswith("token.")


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _typed_refusal(text)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jwk"]),
        st.one_of(
            st.sampled_from(["ES256", "ES384", "none", "HS256", "JWT", FUZZ_RING.current.kid]),
            st.text(max_size=20),
            st.integers(),
            st.none(),
            st.lists(st.integers(), max_size=3),
        ),
    ),
    st.binary(max_size=200),
    st.binary(max_size=100),
)
def test_random_segments(header: dict[str, Any], payload: bytes, signature: bytes) -> None:
    _typed_refusal(f"{_segment(header)}.{_segment(payload)}.{b64url_encode(signature)}")


@FUZZ
@given(st.data())
def test_any_one_character_change_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(FUZZ_TOKEN) - 1))
    replacement = data.draw(
        st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ").filter(
            lambda c: c != FUZZ_TOKEN[position]
        )
    )
    _typed_refusal(FUZZ_TOKEN[:position] + replacement + FUZZ_TOKEN[position + 1 :])
