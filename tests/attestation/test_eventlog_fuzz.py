"""Property tests for the event log parser: hostile bytes only ever raise EvidenceFormatError, and
replaying a generated log equals an independent fold over the events it was built from."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teeplane.attestation.errors import Code, EvidenceFormatError
from teeplane.attestation.eventlog import (
    EV_NO_ACTION,
    TPM_ALG_SHA384,
    compare_rtmrs,
    parse_event_log,
    replay_rtmrs,
)

GCE_LOG = "tdx/go-tdx-guest/ccel/ccel_data.dat"
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SM3 = 0x0012
#: Extra algorithms a generated log may declare besides SHA-384, with their digest sizes.
EXTRA_ALGORITHMS = {TPM_ALG_SHA256: 32, TPM_ALG_SM3: 32, 0x7777: 7}
COMMON_EVENT_TYPES = [EV_NO_ACTION, 0x00000004, 0x0000000D, 0x80000001, 0x80000003]


def spec_id_header(digest_sizes: dict[int, int]) -> bytes:
    """A legacy first record holding a Spec ID Event03 that declares `digest_sizes`."""
    body = (
        b"Spec ID Event03\x00"
        + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(digest_sizes))
        + b"".join(struct.pack("<HH", alg, size) for alg, size in digest_sizes.items())
        + b"\x00"
    )
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(body)) + body


SHA384_ONLY = spec_id_header({TPM_ALG_SHA384: 48})


@dataclass(frozen=True)
class GeneratedEvent:
    index: int
    event_type: int
    digests: dict[int, bytes]
    data: bytes

    def record(self) -> bytes:
        """The TCG_PCR_EVENT2 bytes of this event."""
        return (
            struct.pack("<III", self.index, self.event_type, len(self.digests))
            + b"".join(struct.pack("<H", alg) + digest for alg, digest in self.digests.items())
            + struct.pack("<I", len(self.data))
            + self.data
        )


@st.composite
def generated_logs(draw: st.DrawFn) -> tuple[dict[int, int], list[GeneratedEvent], bytes]:
    """(declared digest sizes, events, log bytes with random padding after the last event)."""
    extras = draw(st.sets(st.sampled_from(sorted(EXTRA_ALGORITHMS))))
    digest_sizes = {TPM_ALG_SHA384: 48, **{alg: EXTRA_ALGORITHMS[alg] for alg in extras}}
    events = []
    for _ in range(draw(st.integers(0, 12))):
        algorithms = draw(st.permutations(sorted(digest_sizes)))
        events.append(
            GeneratedEvent(
                index=draw(st.integers(0, 4)),
                event_type=draw(st.sampled_from(COMMON_EVENT_TYPES) | st.integers(0, 2**32 - 1)),
                digests={
                    alg: draw(st.binary(min_size=digest_sizes[alg], max_size=digest_sizes[alg])) for alg in algorithms
                },
                data=draw(st.binary(max_size=64)),
            )
        )
    padding = draw(st.sampled_from([b"\xff", b"\x00"])) * draw(st.integers(0, 300))
    return digest_sizes, events, spec_id_header(digest_sizes) + b"".join(e.record() for e in events) + padding


def independent_fold(events: list[GeneratedEvent], register: int) -> bytes:
    """RTMR`register` computed straight from the generated events."""
    extending = [e for e in events if e.index == register + 1 and e.event_type != EV_NO_ACTION]
    return reduce(lambda mr, e: hashlib.sha384(mr + e.digests[TPM_ALG_SHA384]).digest(), extending, bytes(48))


def parse_and_replay_or_format_error(data: bytes) -> None:
    """Parse and replay `data`; the only error allowed is a located `eventlog.malformed`."""
    try:
        replay_rtmrs(parse_event_log(data))
    except EvidenceFormatError as error:
        assert error.code == Code.EVENTLOG_MALFORMED
        assert error.where is not None and error.where.startswith("eventlog+0x")


@pytest.fixture(scope="module")
def gce_log(corpus: Path) -> bytes:
    """The GCE CCEL log cut to its events plus a little padding (the full file is 256 KiB of 0xFF)."""
    data = (corpus / GCE_LOG).read_bytes()
    used = len(data.rstrip(b"\xff"))
    return data[: used + 16]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_format_errors(data: bytes) -> None:
    parse_and_replay_or_format_error(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_records_after_a_valid_header_raise_only_format_errors(tail: bytes) -> None:
    parse_and_replay_or_format_error(SHA384_ONLY + tail)


@pytest.mark.corpus
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_corpus_log_raises_only_format_errors(gce_log: bytes, data: st.DataObject) -> None:
    mutated = bytearray(gce_log)
    for _ in range(data.draw(st.integers(1, 8), label="overwrites")):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="insert"):
        at = data.draw(st.integers(0, len(mutated)))
        mutated[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    cut = data.draw(st.integers(0, len(mutated)), label="truncate at")

    parse_and_replay_or_format_error(bytes(mutated[:cut]))


@pytest.mark.corpus
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_corpus_log_is_malformed_or_its_complete_events(gce_log: bytes, data: st.DataObject) -> None:
    full = parse_event_log(gce_log)
    ends = [event.offset for event in full.events[1:]] + [len(gce_log.rstrip(b"\xff"))]
    cut = data.draw(st.integers(full.events[0].offset, len(gce_log)))
    complete = sum(end <= cut for end in ends)

    try:
        truncated = parse_event_log(gce_log[:cut])
    except EvidenceFormatError as error:
        assert error.code == Code.EVENTLOG_MALFORMED
        assert cut not in (full.events[0].offset, *ends)  # a cut between records is a shorter log
        return
    assert truncated.events == full.events[:complete]


@settings(max_examples=300, deadline=None)
@given(generated_logs())
def test_generated_log_parses_back_and_replays_to_an_independent_fold(
    generated: tuple[dict[int, int], list[GeneratedEvent], bytes],
) -> None:
    digest_sizes, events, data = generated

    log = parse_event_log(data)

    assert log.digest_sizes == digest_sizes
    assert [(e.index, e.event_type, e.digests, e.data) for e in log.events] == [
        (e.index, e.event_type, e.digests, e.data) for e in events
    ]
    expected = tuple(independent_fold(events, register) for register in range(4))
    assert replay_rtmrs(log) == expected
    assert compare_rtmrs(replay_rtmrs(log), expected).all_match


@settings(max_examples=200, deadline=None)
@given(generated_logs(), st.integers(0, 3), st.binary(min_size=48, max_size=48))
def test_comparison_flags_exactly_the_register_that_differs(
    generated: tuple[dict[int, int], list[GeneratedEvent], bytes], register: int, other: bytes
) -> None:
    replayed = replay_rtmrs(parse_event_log(generated[2]))
    observed = list(replayed)
    observed[register] = other

    comparison = compare_rtmrs(replayed, observed)

    differs = other != replayed[register]
    assert comparison.all_match is not differs
    assert [e.where for e in comparison.errors()] == ([f"rtmr{register}"] if differs else [])
