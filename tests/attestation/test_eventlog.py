"""CCEL event log parsing and RTMR replay: genuine logs from the corpus, and hand-built ones."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest

from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.eventlog import (
    EV_NO_ACTION,
    TPM_ALG_SHA384,
    Event,
    EventLog,
    compare_rtmrs,
    event_type_name,
    parse_event_log,
    replay_rtmrs,
)
from teeplane.attestation.tdx.quote import parse_quote

GCE_LOG = "tdx/go-tdx-guest/ccel/ccel_data.dat"
GCE_QUOTE = "tdx/go-tdx-guest/ccel/cos-113-tdx-quote.dat"
TRUSTEE_DIR = "tdx/trustee/eventlog"
ALIBABA_LOG = f"{TRUSTEE_DIR}/CCEL_AAEL_alibabacloud"
SM3_LOG = f"{TRUSTEE_DIR}/CCEL_data_csv"
TRUSTEE_LOGS_WITH_JSON = [
    "CCEL_AAEL_alibabacloud",
    "CCEL_data",
    "CCEL_data_csv",
    "CCEL_data_grub",
    "CCEL_data_grub_gke",
    "CCEL_data_ovmf",
]
#: Algorithm names in trustee's JSON -> TPM algorithm IDs.
TRUSTEE_ALGORITHMS = {"SHA-1": 0x0004, "SHA-256": 0x000B, "SHA-384": 0x000C, "SHA-512": 0x000D, "SM3": 0x0012}
_ZERO = "00" * 48
#: RTMR0..3 that trustee's own test (deps/eventlog/src/lib.rs, test_rtmr_integrity) expects each log
#: to replay to.
TRUSTEE_REPLAYED_RTMRS = {
    "CCEL_data": (
        "2dc712306a963eadb894ad47dbaa17df44814151555aee11cbb843becca88950ffd079664902e6f22c66f7c8213543f4",
        "0fa3be56af61208bbd179dc7b124988eb929319154663c539d6f46445ecac2fec287075047ff7bd1922829fec28cd3cf",
        _ZERO,
        _ZERO,
    ),
    "CCEL_data_ovmf": (
        "8566f998798db09443b244c62de9a3041fb02e2e6936c4396d784bba2e90177329ec5aba3bb484404f2ab9cc90abe193",
        "775b9f6bfe99f8a31396f0d0218e67ffa796d3b96ccf961cbb0deba48c79c00f082cda1a5567c1c16305f1fc210c13c6",
        "94eaf7a7bf398ed8d888c91057ae0261802e4f3df084213a76ca7f0b5055ac9d2241de43cd58d9e8b49c503bbf25f34a",
        _ZERO,
    ),
    "CCEL_data_grub": (
        "cec0a104f691f60da2387fea3c2de00c4ac035e2bb479ff02edcce69039d9e9907f0b3e55031da3dc7038f423adebd79",
        "6c289e0c62182d41ebe97bdbc9872d10998a08eaa86adcdc684001a363207ee72942c7522cdf00a4bbc3d784bed7b670",
        "08919d017ba0e52cd6d966351c7de16fe76c1d3d3d3da4554239e4c7d16cb8b82a94e7eaea3a0e6e18eb690b999fd31e",
        _ZERO,
    ),
    "CCEL_data_gcp": (
        "3300980705adf09d28b707b79699d9874892164280832be2c386a715b6e204e0897fb564a064f810659207ba862b304f",
        "204d49f78d29918fe7b2f694e76653861a0c2a018987d2c3a54266eff737232524cf0af68c4d180e2f8c2c0937f21967",
        _ZERO,
        _ZERO,
    ),
    "CCEL_data_grub_gke": (
        "bc9945139042cf2cc75caf920aa57f14884ecfd7e893bccc51250c8ce90eb53ce72741e6adaa18183eb1331a87d4544a",
        "c17cb288a4dee302bb9ed8d27257a168f3264ad68cab53757f37eeaa7039657fa887cad65cf910e0fdc435ff110f8a7b",
        "334aeba2c985f8886cea97d1ecffbd512769d528b9a94009583db667ad7d2faa7d37fa145d75b192ceee2d2f10b2eb6d",
        _ZERO,
    ),
}

EV_SEPARATOR = 0x00000004
EV_IPL = 0x0000000D
TPM_ALG_SHA256 = 0x000B


# --- building logs by hand -------------------------------------------------------------------


def spec_id_header(algorithms: list[tuple[int, int]], *, first_type: int = EV_NO_ACTION) -> bytes:
    """A legacy first record holding a Spec ID Event03 that declares (algorithm ID, digest size)s."""
    body = (
        b"Spec ID Event03\x00"
        + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algorithms))
        + b"".join(struct.pack("<HH", alg, size) for alg, size in algorithms)
        + b"\x00"
    )
    return struct.pack("<II", 0, first_type) + bytes(20) + struct.pack("<I", len(body)) + body


def event_record(index: int, event_type: int, digests: dict[int, bytes], data: bytes = b"") -> bytes:
    """One TCG_PCR_EVENT2 record."""
    return (
        struct.pack("<III", index, event_type, len(digests))
        + b"".join(struct.pack("<H", alg) + digest for alg, digest in digests.items())
        + struct.pack("<I", len(data))
        + data
    )


SHA384_ONLY = spec_id_header([(TPM_ALG_SHA384, 48)])


def sha384_event(index: int, event_type: int, data: bytes) -> bytes:
    """A record whose SHA-384 digest is that of its data."""
    return event_record(index, event_type, {TPM_ALG_SHA384: hashlib.sha384(data).digest()}, data)


# --- locating things inside a parsed log -----------------------------------------------------


def digest_offset(log: EventLog, event: Event, algorithm: int) -> int:
    """Where `event`'s digest for `algorithm` starts (after its algorithm ID)."""
    pos = event.offset + 12
    for alg in event.digests:
        pos += 2
        if alg == algorithm:
            return pos
        pos += log.digest_sizes[alg]
    raise AssertionError(f"event at {event.offset} has no digest {algorithm:#x}")


def event_end(log: EventLog, event: Event) -> int:
    """The offset just past `event`'s record."""
    digests = sum(2 + log.digest_sizes[alg] for alg in event.digests)
    return event.offset + 12 + digests + 4 + len(event.data)


def last_extending_event(log: EventLog, register: int) -> Event:
    """The last event that extends RTMR`register`."""
    return [e for e in log.events if e.index == register + 1 and e.event_type != EV_NO_ACTION][-1]


def expect_malformed(data: bytes, where: str | None = None) -> EvidenceFormatError:
    """Parse `data`, expecting `eventlog.malformed` (at `where`, when given)."""
    with pytest.raises(EvidenceFormatError) as caught:
        parse_event_log(data)
    assert caught.value.code == Code.EVENTLOG_MALFORMED
    assert caught.value.where is not None and caught.value.where.startswith("eventlog+0x")
    if where is not None:
        assert caught.value.where == where
    return caught.value


# --- genuine logs ----------------------------------------------------------------------------


@pytest.mark.corpus
def test_gce_log_replays_exactly_to_its_quote(corpus: Path) -> None:
    log = parse_event_log((corpus / GCE_LOG).read_bytes())
    quote = parse_quote((corpus / GCE_QUOTE).read_bytes())

    comparison = compare_rtmrs(replay_rtmrs(log), quote.body.rtmrs, events=len(log.events))

    assert comparison.all_match
    assert comparison.errors() == []
    assert [r.match for r in comparison.registers] == [True] * 4
    assert all(quote.body.rtmrs[i] != bytes(48) for i in range(3))  # a non-trivial log
    out = comparison.to_json()
    assert out["replayed"] is True
    assert out["events"] == len(log.events) == 43
    for i in range(4):
        assert out[f"rtmr{i}"] == {
            "match": True,
            "replayed": quote.body.rtmrs[i].hex(),
            "quote": quote.body.rtmrs[i].hex(),
        }


@pytest.mark.corpus
@pytest.mark.parametrize("name", TRUSTEE_LOGS_WITH_JSON)
def test_trustee_log_parses_to_trustee_events(corpus: Path, name: str) -> None:
    log = parse_event_log((corpus / TRUSTEE_DIR / name).read_bytes())
    expected = json.loads((corpus / TRUSTEE_DIR / f"{name}_out.json").read_text())["uefi_event_logs"]

    assert len(log.events) == len(expected)
    for event, want in zip(log.events, expected, strict=True):
        assert event.index == want["index"]
        assert event_type_name(event.event_type) == want["type_name"]
        assert event.digests == {TRUSTEE_ALGORITHMS[d["alg"]]: bytes.fromhex(d["digest"]) for d in want["digests"]}
        assert event.data == base64.b64decode(want["event"])


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(TRUSTEE_REPLAYED_RTMRS))
def test_trustee_log_replays_to_trustee_reference(corpus: Path, name: str) -> None:
    log = parse_event_log((corpus / TRUSTEE_DIR / name).read_bytes())

    assert [r.hex() for r in replay_rtmrs(log)] == list(TRUSTEE_REPLAYED_RTMRS[name])


@pytest.mark.corpus
def test_sm3_only_log_parses_but_cannot_replay_into_rtmrs(corpus: Path) -> None:
    log = parse_event_log((corpus / SM3_LOG).read_bytes())
    assert log.digest_sizes == {0x0012: 32}

    with pytest.raises(EvidenceFormatError) as caught:
        replay_rtmrs(log)
    assert caught.value.code == Code.EVENTLOG_MALFORMED
    assert caught.value.where == f"eventlog+{log.events[0].offset:#x}"
    assert "SHA-384" in caught.value.message


# --- tampering with genuine logs -------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(("log_path", "register"), [(GCE_LOG, 0), (GCE_LOG, 1), (GCE_LOG, 2), (ALIBABA_LOG, 3)])
def test_flipped_digest_byte_mismatches_exactly_that_register(corpus: Path, log_path: str, register: int) -> None:
    data = (corpus / log_path).read_bytes()
    log = parse_event_log(data)
    genuine = replay_rtmrs(log)
    target = last_extending_event(log, register)
    tampered = bytearray(data)
    tampered[digest_offset(log, target, TPM_ALG_SHA384) + 17] ^= 0x01

    comparison = compare_rtmrs(replay_rtmrs(parse_event_log(bytes(tampered))), genuine)

    assert not comparison.all_match
    assert [r.match for r in comparison.registers] == [i != register for i in range(4)]
    [error] = comparison.errors()
    assert error.code == Code.EVENTLOG_RTMR_MISMATCH
    assert error.where == f"rtmr{register}"
    assert genuine[register].hex() in error.message
    assert comparison.registers[register].replayed.hex() in error.message
    assert comparison.to_json()[f"rtmr{register}"]["match"] is False


@pytest.mark.corpus
@pytest.mark.parametrize("register", [0, 1, 2])
def test_dropping_last_extension_mismatches_that_register(corpus: Path, register: int) -> None:
    data = (corpus / GCE_LOG).read_bytes()
    log = parse_event_log(data)
    quote = parse_quote((corpus / GCE_QUOTE).read_bytes())
    target = last_extending_event(log, register)
    shortened = data[: target.offset] + data[event_end(log, target) :]

    shortened_log = parse_event_log(shortened)
    comparison = compare_rtmrs(replay_rtmrs(shortened_log), quote.body.rtmrs)

    assert len(shortened_log.events) == len(log.events) - 1
    assert [r.match for r in comparison.registers] == [i != register for i in range(4)]
    assert [e.where for e in comparison.errors()] == [f"rtmr{register}"]


@pytest.mark.corpus
def test_truncated_inside_a_digest_is_malformed_at_that_digest(corpus: Path) -> None:
    data = (corpus / GCE_LOG).read_bytes()
    log = parse_event_log(data)
    victim = log.events[20]
    start = digest_offset(log, victim, TPM_ALG_SHA384)

    error = expect_malformed(data[: start + 10], where=f"eventlog+{start:#x}")
    assert f"offset {start}" in error.message


@pytest.mark.corpus
def test_truncated_inside_event_data_is_malformed(corpus: Path) -> None:
    data = (corpus / GCE_LOG).read_bytes()
    log = parse_event_log(data)
    victim = max(log.events, key=lambda e: len(e.data))
    data_start = event_end(log, victim) - len(victim.data)

    expect_malformed(data[: data_start + len(victim.data) // 2], where=f"eventlog+{data_start:#x}")


@pytest.mark.corpus
def test_undeclared_digest_algorithm_in_genuine_log_is_malformed(corpus: Path) -> None:
    data = bytearray((corpus / GCE_LOG).read_bytes())
    log = parse_event_log(bytes(data))
    algorithm_at = digest_offset(log, log.events[5], TPM_ALG_SHA384) - 2
    struct.pack_into("<H", data, algorithm_at, TPM_ALG_SHA256)

    error = expect_malformed(bytes(data), where=f"eventlog+{algorithm_at:#x}")
    assert "0x000b is not declared" in error.message


# --- hand-built logs -------------------------------------------------------------------------


def test_no_action_event_extends_no_register() -> None:
    measured = [sha384_event(1, EV_IPL, b"kernel"), sha384_event(3, EV_SEPARATOR, b"\x00" * 4)]
    no_action = [sha384_event(index, EV_NO_ACTION, b"StartupLocality\x00\x03") for index in range(5)]
    plain = parse_event_log(SHA384_ONLY + b"".join(measured))
    with_no_action = parse_event_log(SHA384_ONLY + no_action[2] + b"".join(measured) + b"".join(no_action))

    assert len(with_no_action.events) == 2 + 1 + 5
    assert replay_rtmrs(with_no_action) == replay_rtmrs(plain)
    # the same records with a measuring type do change the registers they name
    as_ipl = parse_event_log(SHA384_ONLY + sha384_event(2, EV_IPL, b"StartupLocality\x00\x03"))
    assert replay_rtmrs(as_ipl)[1] != bytes(48)


def test_replay_folds_sha384_per_register_and_skips_mrtd() -> None:
    d1, d2, d3 = (hashlib.sha384(bytes([n])).digest() for n in range(3))
    log = parse_event_log(
        SHA384_ONLY
        + event_record(0, EV_IPL, {TPM_ALG_SHA384: d3})
        + event_record(4, EV_IPL, {TPM_ALG_SHA384: d1})
        + event_record(4, EV_IPL, {TPM_ALG_SHA384: d2})
    )

    step = hashlib.sha384(bytes(48) + d1).digest()
    assert replay_rtmrs(log) == (bytes(48), bytes(48), bytes(48), hashlib.sha384(step + d2).digest())


def test_parse_reads_every_field_and_offset() -> None:
    header = spec_id_header([(TPM_ALG_SHA256, 32), (TPM_ALG_SHA384, 48)])
    digests = {TPM_ALG_SHA256: b"\x11" * 32, TPM_ALG_SHA384: b"\x22" * 48}
    first = event_record(2, 0x80000007, digests, b"Calling EFI Application")
    second = event_record(4, EV_SEPARATOR, {TPM_ALG_SHA384: b"\x33" * 48}, b"\x00\x00\x00\x00")

    log = parse_event_log(header + first + second)

    assert log.digest_sizes == {TPM_ALG_SHA256: 32, TPM_ALG_SHA384: 48}
    assert log.events == (
        Event(2, 0x80000007, digests, b"Calling EFI Application", len(header)),
        Event(4, EV_SEPARATOR, {TPM_ALG_SHA384: b"\x33" * 48}, b"\x00\x00\x00\x00", len(header + first)),
    )


@pytest.mark.parametrize(
    "padding", [b"", b"\xff", b"\xff" * 7, b"\xff" * 4096, b"\x00" * 3, b"\x00" * 12, b"\x00" * 4096]
)
def test_padding_after_the_last_event_ends_the_log(padding: bytes) -> None:
    log = parse_event_log(SHA384_ONLY + sha384_event(1, EV_IPL, b"x") + padding)

    assert [e.data for e in log.events] == [b"x"]


@pytest.mark.parametrize(
    ("tail", "error_at"),
    [
        (b"\x01", 0),  # too short for an event header
        (b"\xff" * 7 + b"\xfe", 0),  # register index 0xFFFFFFFF
        (b"\x00" * 11 + b"\x01", 12),  # an event claiming 2**24 digests, with none there
    ],
)
def test_a_tail_that_is_not_padding_is_malformed(tail: bytes, error_at: int) -> None:
    body = SHA384_ONLY + sha384_event(1, EV_IPL, b"x")

    expect_malformed(body + tail, where=f"eventlog+{len(body) + error_at:#x}")


def test_undeclared_digest_algorithm_is_malformed() -> None:
    record = event_record(1, EV_IPL, {TPM_ALG_SHA384: bytes(48), TPM_ALG_SHA256: bytes(32)})

    error = expect_malformed(SHA384_ONLY + record, where=f"eventlog+{len(SHA384_ONLY) + 12 + 50:#x}")
    assert "not declared" in error.message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (event_record(5, EV_IPL, {TPM_ALG_SHA384: bytes(48)}), "register index 5"),
        (event_record(1, EV_IPL, {}), "no digest"),
        (struct.pack("<III", 1, EV_IPL, 2) + (struct.pack("<H", TPM_ALG_SHA384) + bytes(48)) * 2, "twice"),
        (struct.pack("<III", 1, EV_IPL, 0xFFFFFFFF), "needs 2 bytes"),
        (sha384_event(1, EV_IPL, b"data")[:-1], "event data needs 4 bytes"),
    ],
)
def test_bad_event_record_is_malformed(record: bytes, message: str) -> None:
    error = expect_malformed(SHA384_ONLY + record)

    assert message in error.message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (spec_id_header([(TPM_ALG_SHA384, 48)], first_type=EV_IPL), "not EV_NO_ACTION"),
        (SHA384_ONLY.replace(b"Event03", b"Event02"), "not a 'Spec ID Event03'"),
        (spec_id_header([]), "no digest algorithm"),
        (spec_id_header([(TPM_ALG_SHA384, 32)]), "declared 32 bytes long"),
        (spec_id_header([(TPM_ALG_SHA384, 48), (0x7777, 0)]), "declared 0 bytes long"),
        (spec_id_header([(TPM_ALG_SHA384, 48), (TPM_ALG_SHA384, 48)]), "declared twice"),
        (
            SHA384_ONLY[:28] + struct.pack("<I", 34) + SHA384_ONLY[32:] + b"\x00",
            "has 1 bytes after its vendor info",
        ),
    ],
)
def test_bad_spec_id_event_is_malformed(header: bytes, message: str) -> None:
    error = expect_malformed(header + sha384_event(1, EV_IPL, b"x"))

    assert message in error.message


def test_truncated_spec_id_event_is_malformed() -> None:
    error = expect_malformed(SHA384_ONLY[:40], where="eventlog+0x20")

    assert "needs 33 bytes" in error.message


def test_unknown_algorithm_declared_in_spec_id_is_usable() -> None:
    header = spec_id_header([(TPM_ALG_SHA384, 48), (0x7777, 5)])
    log = parse_event_log(header + event_record(1, EV_IPL, {0x7777: b"abcde", TPM_ALG_SHA384: bytes(48)}))

    assert log.events[0].digests[0x7777] == b"abcde"


def test_compare_rejects_wrong_register_count() -> None:
    with pytest.raises(ValueError, match="expected 4"):
        compare_rtmrs([bytes(48)] * 3, [bytes(48)] * 4)


def test_comparison_json_without_event_count() -> None:
    comparison = compare_rtmrs([bytes(48)] * 4, [bytes(48)] * 3 + [b"\x01" * 48])

    out = comparison.to_json()
    assert out["events"] is None
    assert out["rtmr3"] == {"match": False, "replayed": _ZERO, "quote": "01" * 48}
    assert [r.match for r in comparison.registers] == [True, True, True, False]


def test_event_type_names() -> None:
    assert event_type_name(EV_NO_ACTION) == "EV_NO_ACTION"
    assert event_type_name(0x800000E0) == "EV_EFI_VARIABLE_AUTHORITY"
    assert event_type_name(0x12345678) == "0x12345678"
