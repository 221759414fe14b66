"""Verifying bundles offline: signature, statement, validity, inclusion under the log key, no fork."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rfc8785
from baseline_testing import NOW, document, logged, signed
from securesystemslib.signer import CryptoSigner

from teeplane.baseline import dsse
from teeplane.baseline.bundle import BaselineBundle, Consistency, dump_bundle, read_bundle
from teeplane.baseline.document import PAYLOAD_TYPE
from teeplane.baseline.errors import BaselineInputError, Code
from teeplane.baseline.keys import generate_signer
from teeplane.baseline.tlog.checkpoint import Checkpoint, open_checkpoint
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.baseline.tlog.note import Verifier
from teeplane.baseline.tlog.proof import TlogProof, format_proof, parse_proof
from teeplane.baseline.tlog.storage import TileLog
from teeplane.baseline.verify import check_consistent, verify_bundle
from teeplane.errors import TeeplaneError

ORIGIN = "example.com/baselines"
LOG_SIGNER = LogSigner.generate(ORIGIN)
LOG_KEY = LOG_SIGNER.verifier
SIGNER = generate_signer()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[TileLog]:
    with TileLog.create(tmp_path / "log", LOG_SIGNER) as opened:
        yield opened


def checkpoint_of(log: TileLog) -> Checkpoint:
    return open_checkpoint(log.checkpoint, ORIGIN, [LOG_KEY])


def code_of(
    bundle: BaselineBundle,
    *,
    keys: list[CryptoSigner] | None = None,
    log_key: Verifier = LOG_KEY,
    at: datetime = NOW,
    previous: Checkpoint | None = None,
    consistency: list[bytes] | None = None,
) -> str:
    """The code `verify_bundle` refuses `bundle` with."""
    with pytest.raises(TeeplaneError) as caught:
        pinned = [k.public_key for k in keys or [SIGNER]]
        verify_bundle(bundle, pinned, log_key, at, previous=previous, consistency=consistency)
    return caught.value.code


def test_a_logged_bundle_verifies_and_survives_its_file_format(log: TileLog) -> None:
    for seed in range(3):
        logged(log, signed(seed, generate_signer()))
    bundle = read_bundle(dump_bundle(logged(log, signed(7, SIGNER))))
    verified = verify_bundle(bundle, [SIGNER.public_key], LOG_KEY, NOW)
    assert verified.document == document(7)
    assert (verified.index, verified.checkpoint.size, verified.signers) == (3, 4, (SIGNER.public_key.keyid,))
    assert json.loads(dump_bundle(bundle))["mediaType"] == "application/vnd.teeplane.baseline-bundle.v1+json"


def _with_envelope(bundle: BaselineBundle, change: dict[str, object]) -> BaselineBundle:
    data = bundle.envelope.model_dump(mode="json") | change
    return bundle.model_copy(update={"envelope": dsse.parse_envelope(data)})


def _statement_with_rtmr1(value: str) -> bytes:
    statement = json.loads(document().payload)
    statement["predicate"]["measurements"]["rtmrs"]["rtmr1"] = value
    (subject,) = [s for s in statement["subject"] if s["name"] == "measurement/rtmr1"]
    subject["digest"]["sha384"] = value
    return rfc8785.dumps(statement)


def test_tampering_is_refused_with_a_code_per_tampering(log: TileLog) -> None:
    bundle = logged(log, signed(0, SIGNER))
    payload = bytearray(document().payload)
    payload[100] ^= 1
    sig = bytearray(base64.b64decode(bundle.envelope.signatures[0].sig))
    sig[0] ^= 1
    signature = {"keyid": SIGNER.public_key.keyid, "sig": base64.b64encode(bytes(sig)).decode()}
    changed_rtmr = base64.b64encode(_statement_with_rtmr1("ff" * 48)).decode()
    assert code_of(_with_envelope(bundle, {"payload": base64.b64encode(payload).decode()})) == "dsse.signature_invalid"
    assert code_of(_with_envelope(bundle, {"signatures": [signature]})) == "dsse.signature_invalid"
    assert code_of(_with_envelope(bundle, {"payloadType": "text/plain"})) == "dsse.payload_type_unsupported"
    assert code_of(_with_envelope(bundle, {"payload": changed_rtmr})) == "dsse.signature_invalid"
    # a register changed and signed again with the genuine key: the log never saw that envelope
    resigned = dsse.sign(_statement_with_rtmr1("ff" * 48), PAYLOAD_TYPE, [SIGNER])
    assert code_of(bundle.model_copy(update={"envelope": resigned})) == "merkle.root_mismatch"
    # signed by a key the verifier does not pin
    assert code_of(bundle, keys=[generate_signer()]) == "dsse.untrusted_signer"


def test_a_bundle_outside_its_validity_or_not_logged_is_refused(log: TileLog) -> None:
    bundle = logged(log, signed(0, SIGNER))
    assert code_of(bundle, at=datetime(2031, 1, 1, tzinfo=UTC)) == "baseline.expired"
    assert code_of(bundle, at=datetime(2024, 1, 1, tzinfo=UTC)) == "baseline.not_yet_valid"
    assert code_of(BaselineBundle(envelope=bundle.envelope)) == "baseline.not_logged"


def test_a_proof_for_another_tree_size_index_or_log_is_refused(log: TileLog) -> None:
    for seed in range(3):
        logged(log, signed(seed, SIGNER))
    at_three = logged(log, signed(3, SIGNER))
    logged(log, signed(4, SIGNER))
    proof = parse_proof(at_three.proof.encode())  # type: ignore[union-attr]
    other_size = format_proof(TlogProof(proof.index, proof.hashes, log.checkpoint)).decode()
    assert code_of(at_three.model_copy(update={"proof": other_size})) == "merkle.proof_length"
    other_index = format_proof(TlogProof(2, proof.hashes, proof.checkpoint)).decode()
    assert code_of(at_three.model_copy(update={"proof": other_index})) == "merkle.root_mismatch"
    assert code_of(at_three, log_key=LogSigner.generate(ORIGIN).verifier) == "note.no_trusted_signature"


def test_consistency_with_a_checkpoint_seen_before(log: TileLog) -> None:
    logged(log, signed(0, SIGNER))
    logged(log, signed(1, SIGNER))
    seen = checkpoint_of(log)
    bundle = logged(log, signed(2, SIGNER))
    proof = log.consistency_proof(2)
    assert verify_bundle(bundle, [SIGNER.public_key], LOG_KEY, NOW, previous=seen, consistency=proof).consistent_with
    assert code_of(bundle, previous=seen) == "checkpoint.consistency_unproven"
    assert code_of(bundle, previous=seen, consistency=proof[:-1]) == "merkle.proof_length"
    # the same size needs no proof; a larger checkpoint seen before must extend the bundle's
    check_consistent(checkpoint_of(log), checkpoint_of(log), None)
    logged(log, signed(3, SIGNER))
    later = checkpoint_of(log)
    verify_bundle(bundle, [SIGNER.public_key], LOG_KEY, NOW, previous=later, consistency=log.consistency_proof(3))


def test_a_fork_is_detected(log: TileLog, tmp_path: Path) -> None:
    """The log's key signed two different trees: the bundle's and one a verifier saw before."""
    logged(log, signed(0, SIGNER))
    bundle = logged(log, signed(1, SIGNER))
    with TileLog.create(tmp_path / "fork", LOG_SIGNER) as fork:
        logged(fork, signed(0, SIGNER))
        fork_one = checkpoint_of(fork)
        logged(fork, signed(5, SIGNER))
        fork_two = checkpoint_of(fork)
    with pytest.raises(TeeplaneError) as caught:
        check_consistent(fork_two, checkpoint_of(log), None)
    assert caught.value.code == "checkpoint.inconsistent"
    assert code_of(bundle, previous=fork_two) == "checkpoint.inconsistent"
    # the fork's first tree is the log's first tree (Ed25519 signs deterministically); its second is not
    verify_bundle(bundle, [SIGNER.public_key], LOG_KEY, NOW, previous=fork_one, consistency=log.consistency_proof(1))


def test_the_consistency_proof_can_travel_in_the_bundle(log: TileLog) -> None:
    logged(log, signed(0, SIGNER))
    bundle = logged(log, signed(1, SIGNER))
    proof = log.consistency_proof(1)
    carried = bundle.model_copy(
        update={"consistency": Consistency(size=1, hashes=[base64.b64encode(h).decode() for h in proof])}
    )
    assert read_bundle(dump_bundle(carried)).consistency == carried.consistency
    assert carried.consistency is not None and carried.consistency.proof() == proof


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"mediaType": "x", "envelope": {}}', b'{"envelope": {"payloadType": "a"}, "proof": 1}'],
)
def test_unreadable_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(BaselineInputError) as caught:
        read_bundle(data)
    assert caught.value.code == Code.BUNDLE_MALFORMED
