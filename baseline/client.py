"""A typed client for the BGS, and the log's tiles as a source of Merkle hashes for consistency proofs."""

from __future__ import annotations

from teeplane.baseline.document import ID_PREFIX, BaselineMetadata, baseline_id, named_reference, parse_document
from teeplane.baseline.dsse import Envelope
from teeplane.baseline.errors import BaselineRefusedError, Code
from teeplane.baseline.measurements import ExpectedMeasurements
from teeplane.baseline.service.models import BaselineRecord, SignedBaseline, UnsignedBaseline
from teeplane.baseline.tlog import b64, merkle
from teeplane.baseline.tlog.checkpoint import peek_checkpoint
from teeplane.baseline.tlog.merkle import HASH_SIZE
from teeplane.baseline.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, hash_at, tile_levels, tile_path
from teeplane.remote import RemoteError, ServiceClient, parse_response


class BgsClient(ServiceClient):
    """BGS over HTTP: publish (with an admin token), fetch baselines, read the log's checkpoint and tiles."""

    service = "BGS"

    def publish(self, envelope: Envelope) -> BaselineRecord:
        """Log a pre-signed baseline (or get the record of the same baseline, logged before)."""
        body = self._json("POST", "/v1/baselines", SignedBaseline(envelope=envelope).model_dump(mode="json"))
        return parse_response(BaselineRecord, body, self.service)

    def publish_measurements(
        self, measurements: ExpectedMeasurements, metadata: BaselineMetadata | None = None
    ) -> BaselineRecord:
        """Have the BGS write, sign and log the baseline of `measurements`."""
        request = UnsignedBaseline(measurements=measurements, metadata=metadata or BaselineMetadata())
        body = self._json("POST", "/v1/baselines", request.model_dump(mode="json"))
        return parse_response(BaselineRecord, body, self.service)

    def get(self, wanted: str) -> BaselineRecord:
        """The baseline `wanted` (ID or name@version), checked to be the one asked for: its payload
        hashes to the ID, or its predicate has that name and version."""
        record = parse_response(BaselineRecord, self._json("GET", f"/v1/baselines/{wanted}"), self.service)
        payload = b64.decode(record.envelope.payload, Code.DSSE_MALFORMED, "the payload")
        got = baseline_id(payload)
        if record.id != got:
            raise BaselineRefusedError(Code.BASELINE_ID_MISMATCH, f"the record says {record.id}, its payload is {got}")
        if wanted.startswith(ID_PREFIX) and got != wanted:
            raise BaselineRefusedError(Code.BASELINE_ID_MISMATCH, f"asked for {wanted}, got {got}")
        if not wanted.startswith(ID_PREFIX):
            named = named_reference(parse_document(payload).statement.predicate.model_dump(mode="json"))
            if named != wanted:
                raise BaselineRefusedError(Code.BASELINE_ID_MISMATCH, f"asked for {wanted}, got {named or got}")
        return record

    def checkpoint(self) -> bytes:
        """The log's current signed checkpoint (unverified)."""
        return self._call("GET", "/checkpoint").content

    def tile(self, path: str) -> bytes | None:
        """The tile at a c2sp.org/tlog-tiles path, or None if the BGS does not serve it."""
        try:
            return self._call("GET", "/" + path).content
        except RemoteError as error:
            if error.http_status == 404:
                return None
            raise

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The consistency proof from the log's tree of `size1` entries to that of `size2`, computed
        from the served tiles (verifying it against two signed checkpoints authenticates them)."""
        served = peek_checkpoint(self.checkpoint()).size
        if served < size2:
            raise BaselineRefusedError(Code.CHECKPOINT_UNPROVEN, f"the BGS serves a log of size {served}, not {size2}")
        return merkle.consistency_proof(size1, size2, TileHashes(self, size2, served))


class TileHashes:
    """A `HashReader` over the tiles a BGS serving a log of `served` entries has, for its tree of `size`.

    The tiles of the smaller tree are prefixes of the served ones: the served partial tile, or the
    full tile once that one filled up, as c2sp.org/tlog-tiles clients read them.
    """

    def __init__(self, client: BgsClient, size: int, served: int) -> None:
        self._client = client
        self._size = size
        self._served = served
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of 2**level entries from entry index << level."""
        tile_level, sub = divmod(level, TILE_HEIGHT)
        tile = (index << sub) >> TILE_HEIGHT
        levels = self._tiles.get((tile_level, tile))
        if levels is None:
            levels = self._tiles[(tile_level, tile)] = tile_levels(self._fetch(tile_level, tile))
        return hash_at(levels[sub], index - (tile << (TILE_HEIGHT - sub)))

    def _fetch(self, level: int, tile: int) -> bytes:
        width = min(TILE_WIDTH, (self._size >> (TILE_HEIGHT * level)) - tile * TILE_WIDTH)
        served = min(TILE_WIDTH, (self._served >> (TILE_HEIGHT * level)) - tile * TILE_WIDTH)
        data = self._client.tile(tile_path(level, tile, served))
        if data is None and served < TILE_WIDTH:
            data = self._client.tile(tile_path(level, tile))
        if data is None or len(data) < width * HASH_SIZE:
            raise BaselineRefusedError(
                Code.CHECKPOINT_UNPROVEN, f"the BGS does not serve tile {level}/{tile} of a tree of size {self._size}"
            )
        return data[: width * HASH_SIZE]
