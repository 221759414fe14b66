"""The BGS in-process: publishing (authenticated, idempotent, checked), fetching, the tlog-tiles
surface, group commit under concurrent requests, and a restart that rebuilds the ID map."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from baseline_testing import NOW, document, measurements, metadata, signed
from fastapi.testclient import TestClient
from securesystemslib.signer import CryptoSigner

from teeplane.auth import hash_admin_token
from teeplane.baseline import dsse
from teeplane.baseline.bundle import BaselineBundle
from teeplane.baseline.client import BgsClient
from teeplane.baseline.document import PAYLOAD_TYPE, BaselineMetadata, build_document
from teeplane.baseline.keys import KeyType, generate_signer
from teeplane.baseline.service.app import create_bgs_app
from teeplane.baseline.service.registry import INDEX_FILE, LOG_DIR, BaselineRegistry
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.baseline.tlog.storage import TileLog
from teeplane.baseline.tlog.tiles import decode_bundle
from teeplane.baseline.verify import verify_bundle
from teeplane.errors import TeeplaneError
from teeplane.http import PROBLEM_JSON
from teeplane.remote import RemoteError

TOKEN = "bgs-admin-token"
ORIGIN = "example.com/bgs-test"
LOG_SIGNER = LogSigner.generate(ORIGIN)
BGS_SIGNER = generate_signer(KeyType.ECDSA_P256)
RELEASE_SIGNER = generate_signer(KeyType.ED25519)


@dataclass
class Bgs:
    state: Path
    registry: BaselineRegistry
    http: TestClient
    client: BgsClient

    def reopen(self) -> Bgs:
        self.registry.close()
        return start(self.state)


def start(state: Path) -> Bgs:
    registry = BaselineRegistry.open(state, LOG_SIGNER, BGS_SIGNER, [RELEASE_SIGNER.public_key], lambda: NOW)
    http = TestClient(create_bgs_app(registry, [hash_admin_token(TOKEN)]))
    return Bgs(state, registry, http, BgsClient(admin_token=TOKEN, http=TestClient(http.app)))


@pytest.fixture
def bgs(tmp_path: Path) -> Iterator[Bgs]:
    running = start(tmp_path)
    yield running
    running.registry.close()


def verified(bundle: BaselineBundle, signer: CryptoSigner = BGS_SIGNER) -> int:
    """The log index of a bundle that verifies under the BGS's and the release keys."""
    keys = [BGS_SIGNER.public_key, RELEASE_SIGNER.public_key]
    assert signer.public_key in keys
    return verify_bundle(bundle, keys, LOG_SIGNER.verifier, NOW).index


def test_publishing_signs_logs_and_is_idempotent(bgs: Bgs) -> None:
    body = {"measurements": measurements(1).model_dump(mode="json"), "metadata": metadata(1).model_dump(mode="json")}
    first = bgs.http.post("/v1/baselines", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert first.status_code == 201, first.text
    again = bgs.http.post("/v1/baselines", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert again.status_code == 200 and again.json() == first.json()
    record = bgs.client.get(first.json()["id"])
    assert record.id == document(1).id and record.index == 0
    assert verified(BaselineBundle(envelope=record.envelope, proof=record.proof)) == 0
    assert record.envelope.signatures[0].keyid == BGS_SIGNER.public_key.keyid


def test_pre_signed_baselines_are_logged_as_signed(bgs: Bgs) -> None:
    envelope = signed(2, RELEASE_SIGNER)
    record = bgs.client.publish(envelope)
    assert (record.envelope, record.id) == (envelope, document(2).id)
    assert verified(BaselineBundle(envelope=envelope, proof=record.proof), RELEASE_SIGNER) == 0
    # the same statement signed by another trusted key is the same baseline: the first entry stays
    assert bgs.client.publish(signed(2, BGS_SIGNER)).envelope == envelope
    assert bgs.registry.size == 1


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "auth.admin_required"),
        ({"Authorization": "Bearer wrong"}, 401, "auth.admin_required"),
        ({"Authorization": f"Basic {TOKEN}"}, 401, "auth.admin_required"),
    ],
)
def test_publishing_needs_the_admin_token(bgs: Bgs, headers: dict[str, str], status: int, code: str) -> None:
    response = bgs.http.post("/v1/baselines", json={"envelope": signed(0, BGS_SIGNER).model_dump()}, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers["content-type"] == PROBLEM_JSON
    assert bgs.registry.size == 0


def test_what_publishing_refuses(bgs: Bgs) -> None:
    def code(action: object) -> tuple[int, str]:
        with pytest.raises(RemoteError) as caught:
            action()  # type: ignore[operator]
        return caught.value.http_status, caught.value.code

    assert code(lambda: bgs.client.publish(signed(0, generate_signer()))) == (403, "dsse.untrusted_signer")
    expired = BaselineMetadata.model_validate(
        {"validity": {"notBefore": "2020-01-01T00:00:00Z", "notAfter": "2021-01-01T00:00:00Z"}}
    )
    assert code(lambda: bgs.client.publish_measurements(measurements(), expired)) == (403, "baseline.expired")
    no_mrtd = measurements().model_copy(update={"mrtd": None})
    assert code(lambda: bgs.client.publish_measurements(no_mrtd)) == (400, "baseline.malformed")
    response = bgs.http.post("/v1/baselines", json={"envelope": {}}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (response.status_code, response.json()["code"]) == (422, "request.invalid")
    assert bgs.registry.size == 0


def test_fetching_unknown_or_malformed_ids(bgs: Bgs) -> None:
    response = bgs.http.get("/v1/baselines/sha256:" + "0" * 64)
    assert (response.status_code, response.json()["code"]) == (404, "baseline.not_found")
    assert bgs.http.get("/v1/baselines/sha256:00").status_code == 422


def test_the_log_is_served_as_tlog_tiles(bgs: Bgs) -> None:
    envelope = signed(0, BGS_SIGNER)
    bgs.client.publish(envelope)
    checkpoint = bgs.http.get("/checkpoint")
    assert checkpoint.headers["content-type"] == "text/plain; charset=utf-8"
    assert checkpoint.headers["cache-control"] == "no-cache"
    assert checkpoint.content == bgs.registry.checkpoint
    partial = bgs.http.get("/tile/entries/000.p/1")
    assert partial.headers["content-type"] == "application/octet-stream"
    assert partial.headers["cache-control"] == "no-cache"
    assert decode_bundle(partial.content) == [envelope.canonical()]
    assert len(bgs.http.get("/tile/0/000.p/1").content) == 32
    for missing in ("/tile/0/000.p/2", "/tile/0/000", "/tile/1/000.p/1", "/tile/0/0", "/tile/0/x000/000.p/1"):
        response = bgs.http.get(missing)
        assert (response.status_code, response.headers["content-type"]) == (404, PROBLEM_JSON), missing


def test_full_tiles_are_immutable_and_clients_prove_consistency_from_tiles(tmp_path: Path) -> None:
    """A log of 260 entries written beforehand: the BGS maps them on open and serves their tiles."""
    with TileLog.create(tmp_path / LOG_DIR, LOG_SIGNER) as log:
        log.append([signed(seed, RELEASE_SIGNER).canonical() for seed in range(3)])
        log.append([signed(seed, RELEASE_SIGNER).canonical() for seed in range(3, 260)])
    bgs = start(tmp_path)
    try:
        assert bgs.client.get(document(259).id).index == 259
        full = bgs.http.get("/tile/0/000")
        assert full.headers["cache-control"] == "public, max-age=31536000, immutable" and len(full.content) == 8192
        assert len(decode_bundle(bgs.http.get("/tile/entries/000").content)) == 256
        assert len(bgs.http.get("/tile/1/000.p/1").content) == 32
        log = bgs.registry._log
        for size1, size2 in [(1, 260), (3, 256), (200, 257), (2, 3)]:
            assert bgs.client.consistency_proof(size1, size2) == log.consistency_proof(size1, size2)
        # the partial tiles of a tile that filled up are gone; the client reads the full tile's prefix
        assert bgs.http.get("/tile/0/000.p/3").status_code == 404
        assert bgs.client.consistency_proof(2, 3) == log.consistency_proof(2, 3)
    finally:
        bgs.registry.close()


def test_concurrent_publications_share_checkpoints(bgs: Bgs) -> None:
    appends = []
    original = bgs.registry._log.append

    def counting(entries: list[bytes]) -> range:
        appends.append(len(entries))
        time.sleep(0.01)  # let requests pile up behind this batch
        return original(entries)

    bgs.registry._log.append = counting  # type: ignore[method-assign]
    envelopes = [signed(seed, BGS_SIGNER) for seed in range(40)] + [signed(0, BGS_SIGNER)] * 5
    with ThreadPoolExecutor(16) as pool:
        published = list(pool.map(bgs.registry.publish, envelopes))
    assert sorted(p.record.index for p in published[:40]) == list(range(40))
    assert {p.record.index for p in published[40:]} == {published[0].record.index}
    assert sum(p.created for p in published) == 40 == sum(appends)
    assert len(appends) < 40  # batched: fewer checkpoints than baselines
    for p in published:
        assert bgs.client.get(p.record.id).index == p.record.index


def test_a_restart_keeps_everything_and_the_id_map_is_rebuilt_from_the_log(bgs: Bgs) -> None:
    ids = [bgs.registry.publish(signed(seed, BGS_SIGNER)).record.id for seed in range(5)]
    checkpoint = bgs.registry.checkpoint
    bgs = bgs.reopen()
    assert bgs.registry.checkpoint == checkpoint
    assert [bgs.client.get(i).index for i in ids] == list(range(5))
    bgs.registry.close()
    (bgs.state / INDEX_FILE).unlink()
    bgs = start(bgs.state)
    assert [bgs.client.get(i).index for i in ids] == list(range(5))
    assert bgs.client.publish(signed(0, BGS_SIGNER)).index == 0
    assert bgs.registry.size == 5
    bgs.registry.close()


def test_metrics(bgs: Bgs) -> None:
    bgs.client.publish(signed(0, BGS_SIGNER))
    with pytest.raises(RemoteError):
        bgs.client.publish(signed(1, generate_signer()))
    text = bgs.http.get("/metrics").text
    assert "teeplane_bgs_log_entries 1.0" in text
    assert 'teeplane_bgs_publications_total{code="",result="created"} 1.0' in text
    assert 'teeplane_bgs_publications_total{code="dsse.untrusted_signer",result="refused"} 1.0' in text


def test_a_baseline_is_found_by_name_at_version(bgs: Bgs) -> None:
    """name@version resolves to the latest baseline of it; a new one may refresh the validity, not the
    measurements; the map from names is rebuilt from the log like the one from IDs."""
    first = bgs.client.publish(signed(0, BGS_SIGNER))
    assert bgs.client.get("payments@1.2.3") == bgs.client.get(first.id)
    refreshed_metadata = metadata(0).model_copy(update={"validity": metadata(0).validity.model_copy(
        update={"not_after": metadata(0).validity.not_after.replace(year=2031)})})  # fmt: skip
    refreshed = bgs.client.publish_measurements(measurements(0), refreshed_metadata)
    assert refreshed.id != first.id and refreshed.index == 1
    assert bgs.client.get("payments@1.2.3").id == refreshed.id

    other = build_document(measurements(5), metadata(0))  # payments@1.2.3, measuring something else
    with pytest.raises(RemoteError) as conflict:
        bgs.client.publish(dsse.sign(other.payload, PAYLOAD_TYPE, [BGS_SIGNER]))
    assert (conflict.value.http_status, conflict.value.code) == (409, "baseline.version_exists")
    assert refreshed.id in str(conflict.value) and bgs.registry.size == 2

    bgs.registry.close()
    (bgs.state / INDEX_FILE).unlink()
    bgs = start(bgs.state)
    assert bgs.client.get("payments@1.2.3").id == refreshed.id
    assert (bgs.http.get("/v1/baselines/payments@9.9.9").json()["code"]) == "baseline.not_found"
    assert bgs.http.get("/v1/baselines/Payments@1.2.3").status_code == 422
    bgs.registry.close()


def test_concurrent_publications_of_one_version_log_one_set_of_measurements(bgs: Bgs) -> None:
    rivals = [dsse.sign(build_document(measurements(seed), metadata(0)).payload, PAYLOAD_TYPE, [BGS_SIGNER])
              for seed in range(8)]  # fmt: skip
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda e: _outcome(bgs.registry.publish, e), rivals))
    logged = [o for o in outcomes if not isinstance(o, str)]
    assert len(logged) == 1 and outcomes.count("baseline.version_exists") == 7
    assert bgs.client.get("payments@1.2.3").id == logged[0].record.id


def _outcome(publish: Any, envelope: dsse.Envelope) -> Any:
    try:
        return publish(envelope)
    except TeeplaneError as error:
        return error.code
