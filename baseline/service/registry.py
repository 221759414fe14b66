"""The BGS state: a tiled transparency log of DSSE envelopes and the map from baseline ID to entry.

Publishing checks the envelope is signed by a trusted key and holds a valid, unexpired baseline,
then appends its canonical JSON to the log. Requests that arrive while an append is being written
wait and go into the next one together (group commit): one checkpoint signature and one round of
fsyncs per batch. A baseline already in the log is not appended again; its first entry is returned.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from securesystemslib.signer import Key, Signer

from teeplane.baseline import dsse
from teeplane.baseline.document import (
    ID_PREFIX,
    PAYLOAD_TYPE,
    BaselineMetadata,
    baseline_id,
    build_document,
    measurements_digest,
    named_reference,
)
from teeplane.baseline.document import parse_document as parse_baseline
from teeplane.baseline.errors import (
    BaselineConflictError,
    BaselineNotFoundError,
    BaselineRefusedError,
    Code,
    LogInputError,
    LogStorageError,
)
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.service.index import BaselineIndex, IndexRow
from teeplane.baseline.service.models import BaselineRecord
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.note import Signer as LogSigner
from teeplane.baseline.tlog.storage import CHECKPOINT, TileLog
from teeplane.baseline.tlog.tiles import MAX_ENTRY_SIZE, TILE_WIDTH, TileId, parse_tile_path
from teeplane.errors import TeeplaneError

LOG_DIR = "log"
INDEX_FILE = "baselines.db"


@dataclass(frozen=True, slots=True)
class Published:
    """The record of a published baseline, and whether this request added it to the log."""

    record: BaselineRecord
    created: bool


@dataclass(frozen=True, slots=True)
class Tile:
    """A tile's bytes and which tile it is."""

    data: bytes
    tile: TileId


@dataclass(slots=True)
class _Pending:
    """A baseline waiting to be appended; `done` gets its index and whether this request added it."""

    row: IndexRow  # its log index not known yet
    entry: bytes
    done: Future[tuple[int, bool]] = field(default_factory=Future)


def read_entry(entry: bytes) -> tuple[dsse.Envelope, str]:
    """The envelope a log entry holds (its canonical JSON) and the ID of its baseline."""
    try:
        envelope = dsse.parse_envelope(json.loads(entry))
        return envelope, baseline_id(_payload(envelope))
    except (ValueError, TeeplaneError):
        raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, "a log entry is not a DSSE envelope") from None


def _index_row(entry: bytes, index: int) -> IndexRow:
    """What the map records for a logged entry."""
    envelope, logged_id = read_entry(entry)
    try:
        predicate = json.loads(_payload(envelope))["predicate"]
        return IndexRow(logged_id, index, named_reference(predicate), measurements_digest(predicate))
    except (ValueError, TypeError, KeyError, AttributeError, rfc8785.CanonicalizationError):
        raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, f"entry {index} holds no baseline statement") from None


def _payload(envelope: dsse.Envelope) -> bytes:
    return b64.decode(envelope.payload, Code.TLOG_BUNDLE_CORRUPT, "a logged payload")


class BaselineRegistry:
    """Publishes and serves baselines; thread-safe."""

    def __init__(
        self,
        log: TileLog,
        index: BaselineIndex,
        signer: Signer,
        trusted_keys: Sequence[Key] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Use `BaselineRegistry.open`."""
        self._log = log
        self._index = index
        self._signer = signer
        self._trusted = [signer.public_key, *trusted_keys]
        self._clock = clock
        self._lock = threading.Lock()  # the log and the index
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._catch_up()

    @classmethod
    def open(
        cls,
        state: Path,
        log_signer: LogSigner,
        signer: Signer,
        trusted_keys: Sequence[Key] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> BaselineRegistry:
        """The registry kept in `state`: the log in `state/log` (created when absent), the map beside it."""
        log_dir = state / LOG_DIR
        exists = (log_dir / CHECKPOINT).is_file()
        log = TileLog.open(log_dir, log_signer) if exists else TileLog.create(log_dir, log_signer)
        try:
            return cls(log, BaselineIndex(state / INDEX_FILE), signer, trusted_keys, clock)
        except BaseException:
            log.close()
            raise

    def close(self) -> None:
        """Release the log and the map."""
        with self._lock:
            self._log.close()
            self._index.close()

    @property
    def size(self) -> int:
        """The number of entries in the log."""
        return self._log.size

    @property
    def checkpoint(self) -> bytes:
        """The log's current signed checkpoint."""
        return self._log.checkpoint

    def _catch_up(self) -> None:
        """Bring the map up to the log: drop what the log does not hold, add what it does."""
        with self._lock:
            self._index.forget_from(self._log.size)
            start = self._index.covered()
            for first in range(start, self._log.size, TILE_WIDTH):
                entries = self._log.entries(first, min(first + TILE_WIDTH, self._log.size))
                self._index.add(_index_row(e, i) for i, e in enumerate(entries, first))

    # -- publishing

    def publish(self, envelope: dsse.Envelope) -> Published:
        """Log a signed baseline (or find it logged already)."""
        verified = dsse.verify(envelope, self._trusted, PAYLOAD_TYPE)
        document = parse_baseline(verified.payload)
        not_after = document.statement.predicate.validity.not_after
        if self._clock() >= not_after:
            raise BaselineRefusedError(Code.BASELINE_EXPIRED, f"expired at {not_after.isoformat()}")
        entry = envelope.canonical()
        if len(entry) > MAX_ENTRY_SIZE:
            raise LogInputError(Code.TLOG_ENTRY_TOO_LARGE, f"the envelope is {len(entry)} bytes, over {MAX_ENTRY_SIZE}")
        predicate = json.loads(document.payload)["predicate"]
        with self._lock:
            existing = self._index.get(document.id)
        if existing is not None:
            return Published(self.get(document.id), created=False)
        row = IndexRow(document.id, -1, named_reference(predicate), measurements_digest(predicate))
        pending = _Pending(row, entry)
        self._append(pending)
        index, created = pending.done.result()
        with self._lock:
            return Published(self._record(document.id, index), created)

    def publish_measurements(
        self, measurements: ExpectedMeasurements, metadata: BaselineMetadata | None = None
    ) -> Published:
        """Write, sign (with the BGS's key) and log the baseline of `measurements`."""
        document = build_document(measurements, metadata, now=self._clock())
        return self.publish(dsse.sign(document.payload, PAYLOAD_TYPE, [self._signer]))

    def _append(self, pending: _Pending) -> None:
        """Queue `pending`; whoever takes the lock next appends everything queued in one batch."""
        with self._queue_lock:
            self._queue.append(pending)
        with self._lock:
            if pending.done.done():
                return
            with self._queue_lock:
                batch, self._queue = self._queue, []
            fresh: dict[str, _Pending] = {}
            named: dict[str, tuple[str, str]] = {}  # name@version -> (ID, measured) this batch logs
            for item in batch:
                if self._index.get(item.row.id) is not None:
                    continue
                if conflict := self._conflict(item.row, named):
                    item.done.set_exception(conflict)
                    continue
                fresh.setdefault(item.row.id, item)
                if item.row.reference:
                    named[item.row.reference] = (item.row.id, item.row.measured)
            try:
                added = self._log.append([item.entry for item in fresh.values()])
                logged = zip(fresh.values(), added, strict=True)
                self._index.add(item.row._replace(log_index=i) for item, i in logged)
            except Exception as exc:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                return
            for item in batch:
                if item.done.done():
                    continue
                index = self._index.get(item.row.id)
                assert index is not None
                item.done.set_result((index, fresh.get(item.row.id) is item))

    def _conflict(self, row: IndexRow, batch: dict[str, tuple[str, str]]) -> BaselineConflictError | None:
        """A name@version names one set of measurements: a new baseline of it may only refresh the
        validity or the metadata of what it names."""
        holder = None if row.reference is None else (batch.get(row.reference) or self._index.named(row.reference))
        if row.reference is None or holder is None or holder[1] == row.measured:
            return None
        return BaselineConflictError(row.reference, holder[0])

    # -- reading

    def get(self, wanted: str) -> BaselineRecord:
        """The logged baseline `wanted` (its ID, or name@version) with an inclusion proof under the
        current checkpoint."""
        with self._lock:
            named = None if wanted.startswith(ID_PREFIX) else self._index.named(wanted)
            found = wanted if wanted.startswith(ID_PREFIX) else named and named[0]
            index = None if found is None else self._index.get(found)
            if found is None or index is None:
                raise BaselineNotFoundError(wanted)
            return self._record(found, index)

    def _record(self, baseline_id: str, index: int) -> BaselineRecord:
        envelope, logged_id = read_entry(self._log.entry(index))
        if logged_id != baseline_id:
            raise LogStorageError(Code.TLOG_BUNDLE_CORRUPT, f"entry {index} does not hold {baseline_id}")
        return BaselineRecord(
            id=baseline_id, index=index, envelope=envelope, proof=self._log.tlog_proof(index).decode()
        )

    def tile(self, path: str) -> Tile | None:
        """The tile or entry bundle at a c2sp.org/tlog-tiles path, if the current checkpoint covers it."""
        try:
            tile = parse_tile_path(path)
        except ValueError:
            return None
        if not tile.covered_by(self._log.size):
            return None
        try:
            return Tile((self._log.root / path).read_bytes(), tile)
        except FileNotFoundError:  # a partial tile removed once its tile was full
            return None
