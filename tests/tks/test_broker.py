"""The Key Broker with tokens from the real RAS pipeline: every release and every refusal."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey
from ras_testing import NOW, WORKLOAD, Ras, evidence_request, make_ras, reference_for

from teeplane.attestation.agent import ephemeral_tee_key
from teeplane.attestation.reference import AppraisalPolicy
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.errors import TeeplaneError
from teeplane.tks.broker import KeyBroker
from teeplane.tks.envelope import seal
from teeplane.tks.jwe import open_for_tee
from teeplane.tks.jwks import JwksCache
from teeplane.tks.kek import FileKek
from teeplane.tks.models import KeyKind, KeyMetadata, KeyVersion, ReleasePolicy
from teeplane.tks.view import KeyView

ISSUER, AUDIENCE = "https://ras.teeplane.local", "teeplane-tks"
KEK = FileKek(secrets.token_bytes(32))
MATERIAL = {1: secrets.token_bytes(32), 2: secrets.token_bytes(32)}


@pytest.fixture(scope="module")
def authority() -> SimulationAuthority:
    return SimulationAuthority.generate(NOW - timedelta(days=1))


@pytest.fixture
def ras(tmp_path: Path, authority: SimulationAuthority) -> Ras:
    instance = make_ras(tmp_path / "ras.db", authority)
    instance.service.put_reference_values(WORKLOAD.key, reference_for(boot_example_td(authority)))
    instance.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    return instance


def attest(ras: Ras, authority: SimulationAuthority) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """A token for the example workload, bound to a fresh TEE key (as the agent does)."""
    key, jwk = ephemeral_tee_key()
    client = ras.client()
    request = evidence_request(boot_example_td(authority), client.challenge().nonce, runtime_data={"tee_pubkey": jwk})
    return client.attest(request).token, key


def broker_for(ras: Ras, policy: ReleasePolicy, *, audience: str = AUDIENCE, now: datetime | None = None) -> KeyBroker:
    """A broker whose view holds `ledger-key` (versions 1 and 2) under `policy`."""
    view = KeyView(client=None)
    view.metadata["ledger-key"] = KeyMetadata(
        id="ledger-key", kind=KeyKind.AES256, created_at=NOW, policy=policy,
        versions=[KeyVersion(version=1, created_at=NOW), KeyVersion(version=2, created_at=NOW)],
    )  # fmt: skip
    for version, material in MATERIAL.items():
        view.envelopes[("ledger-key", version)] = seal(
            material, key_id="ledger-key", version=version, kek=KEK
        ).to_bytes()
    jwks = JwksCache(fetch=ras.service.jwks)
    # The broker's clock is RAS's (fixed when the tests were collected): tokens are judged when they were issued.
    return KeyBroker(view, KEK, jwks, audience=audience, issuer=ISSUER, clock=lambda: now or ras.clock.now)


SIMULATED_OK = ReleasePolicy(workloads=[WORKLOAD.key], baselines=["baseline-example-1"], allow_simulated=True)


def refused(call: Any) -> TeeplaneError:
    with pytest.raises(TeeplaneError) as caught:
        call()
    return caught.value


def test_release_opens_only_with_the_tee_key(ras: Ras, authority: SimulationAuthority) -> None:
    token, tee_key = attest(ras, authority)
    jwe = broker_for(ras, SIMULATED_OK).release("ledger-key", f"Bearer {token}")
    assert open_for_tee(jwe, ECKey.import_key(tee_key)) == MATERIAL[2]
    older = broker_for(ras, SIMULATED_OK).release("ledger-key", f"Bearer {token}", version=1)
    assert open_for_tee(older, ECKey.import_key(tee_key)) == MATERIAL[1]
    with pytest.raises(TeeplaneError):
        open_for_tee(jwe, ECKey.generate_key("P-256"))


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "token.missing"), ("Basic abc", "token.missing"), ("Bearer not-a-token", "token.malformed")],
)
def test_missing_or_malformed_token(ras: Ras, authorization: str | None, code: str) -> None:
    assert refused(lambda: broker_for(ras, SIMULATED_OK).release("ledger-key", authorization)).code == code


def test_forged_tokens(ras: Ras, authority: SimulationAuthority) -> None:
    token, _ = attest(ras, authority)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["submods"]["tdx"]["teeplane.workload"]["name"] = "someone-else"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    broker = broker_for(ras, SIMULATED_OK)
    assert refused(lambda: broker.release("ledger-key", f"Bearer {header}.{forged_payload}.{signature}")).code == (
        "token.signature_invalid"
    )
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert (
        refused(lambda: broker.release("ledger-key", f"Bearer {none_header}.{payload}.")).code == "token.alg_rejected"
    )


def test_token_of_another_ras_has_an_unknown_kid(tmp_path: Path, ras: Ras, authority: SimulationAuthority) -> None:
    other = make_ras(tmp_path / "other.db", authority)
    other.service.put_reference_values(WORKLOAD.key, reference_for(boot_example_td(authority)))
    other.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    token, _ = attest(other, authority)
    assert refused(lambda: broker_for(ras, SIMULATED_OK).release("ledger-key", f"Bearer {token}")).code == (
        "token.unknown_kid"
    )


def test_expired_token_and_wrong_audience(ras: Ras, authority: SimulationAuthority) -> None:
    token, _ = attest(ras, authority)
    later = ras.clock.now + timedelta(minutes=10)
    assert refused(lambda: broker_for(ras, SIMULATED_OK, now=later).release("ledger-key", f"Bearer {token}")).code == (
        "token.expired"
    )
    elsewhere = broker_for(ras, SIMULATED_OK, audience="another-service")
    assert refused(lambda: elsewhere.release("ledger-key", f"Bearer {token}")).code == "token.audience_mismatch"


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        (SIMULATED_OK.model_copy(update={"workloads": ["payments/other"]}), "release.workload_not_allowed"),
        (SIMULATED_OK.model_copy(update={"baselines": ["another-baseline"]}), "release.baseline_not_allowed"),
        (SIMULATED_OK.model_copy(update={"allow_simulated": False}), "release.simulated_not_allowed"),
        (SIMULATED_OK.model_copy(update={"tee_types": ["snp"]}), "release.tee_not_allowed"),
    ],
    ids=["other workload", "baseline", "simulated", "tee type"],
)
def test_policy_clauses(ras: Ras, authority: SimulationAuthority, policy: ReleasePolicy, code: str) -> None:
    token, _ = attest(ras, authority)
    assert refused(lambda: broker_for(ras, policy).release("ledger-key", f"Bearer {token}")).code == code


def test_deleted_key_and_pinned_latest_version(ras: Ras, authority: SimulationAuthority) -> None:
    token, _ = attest(ras, authority)
    broker = broker_for(ras, SIMULATED_OK.model_copy(update={"require_latest_version": True}))
    assert refused(lambda: broker.release("ledger-key", f"Bearer {token}", version=1)).code == (
        "release.version_not_latest"
    )
    del broker.view.metadata["ledger-key"]
    error = refused(lambda: broker.release("ledger-key", f"Bearer {token}"))
    assert (error.code, error.http_status) == ("tks.key_not_found", 404)


def test_audit_records_every_decision_and_no_secret(
    ras: Ras, authority: SimulationAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    token, _ = attest(ras, authority)
    broker = broker_for(ras, SIMULATED_OK)
    with caplog.at_level(logging.INFO, logger="teeplane.tks.audit"):
        broker.release("ledger-key", f"Bearer {token}")
        refused(lambda: broker.release("ledger-key", None))
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "teeplane.tks.audit"]
    assert [(r["result"], r["code"]) for r in records] == [("released", None), ("refused", "token.missing")]
    assert records[0]["workload"] == WORKLOAD.key
    logged = caplog.text
    assert token not in logged and token.split(".")[1] not in logged
    assert not any(m.hex() in logged or base64.b64encode(m).decode() in logged for m in MATERIAL.values())


def test_view_without_etcd_is_usable_for_reads() -> None:
    """KeyView holds plain dicts; the broker never awaits etcd on the release path."""
    assert asyncio.iscoroutinefunction(KeyBroker.release) is False
