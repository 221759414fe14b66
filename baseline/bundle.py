"""Baseline bundles: one self-contained JSON file a verifier checks offline.

```
{"mediaType": "application/vnd.teeplane.baseline-bundle.v1+json",
 "envelope": {DSSE envelope of the canonical statement},
 "proof": "c2sp.org/tlog-proof@v1\\nindex N\\n<hashes>\\n\\n<signed checkpoint>",   null before publishing
 "consistency": {"size": M, "hashes": [base64, ...]}}                            optional
```

The log entry is the envelope as RFC 8785 canonical JSON, so the proof is checked against the
bytes the verifier re-serializes from `envelope`. The signed checkpoint the proof leads to is the
one inside the tlog-proof (c2sp.org/tlog-proof carries it verbatim), not repeated beside it.
`consistency`, when present, proves that the log's tree of M entries is a prefix of that
checkpoint's tree: a verifier who last saw the checkpoint of size M needs nothing else to rule
out a fork.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from teeplane.baseline.document import baseline_id
from teeplane.baseline.dsse import Envelope
from teeplane.baseline.errors import BaselineInputError, Code
from teeplane.baseline.tlog import b64
from teeplane.baseline.tlog.proof import MAX_PROOF_HASHES
from teeplane.remote import first_error

MediaType = Literal["application/vnd.teeplane.baseline-bundle.v1+json"]
MEDIA_TYPE: MediaType = "application/vnd.teeplane.baseline-bundle.v1+json"
_B64_HASH = r"^[A-Za-z0-9+/]{43}=$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class Consistency(_Model):
    """A consistency proof from the log's tree of `size` entries to the tree of the proof's checkpoint."""

    size: int = Field(ge=0)
    hashes: list[Annotated[str, Field(pattern=_B64_HASH)]] = Field(default_factory=list, max_length=MAX_PROOF_HASHES)

    def proof(self) -> list[bytes]:
        """The proof hashes as bytes."""
        return [b64.decode(h, Code.BUNDLE_MALFORMED, "a consistency proof hash") for h in self.hashes]


class BaselineBundle(_Model):
    """A signed baseline with what proves it is in the log."""

    media_type: MediaType = Field(default=MEDIA_TYPE, alias="mediaType")
    envelope: Envelope
    proof: str | None = Field(default=None, max_length=16_384, description="c2sp.org/tlog-proof of the envelope")
    consistency: Consistency | None = None


def read_bundle(data: bytes) -> BaselineBundle:
    """A bundle from its JSON, or `bundle.malformed`."""
    try:
        return BaselineBundle.model_validate_json(data)
    except ValidationError as exc:
        raise BaselineInputError(Code.BUNDLE_MALFORMED, f"not a baseline bundle: {first_error(exc)}") from None


def parse_bundle(data: object) -> BaselineBundle:
    """A bundle from decoded JSON (e.g. as an EPS serves it), or `bundle.malformed`."""
    try:
        return BaselineBundle.model_validate(data)
    except ValidationError as exc:
        raise BaselineInputError(Code.BUNDLE_MALFORMED, f"not a baseline bundle: {first_error(exc)}") from None


def dump_bundle(bundle: BaselineBundle) -> bytes:
    """The bundle as indented JSON, unset optional fields left out."""
    return (json.dumps(bundle.model_dump(mode="json", exclude_none=True), indent=2) + "\n").encode()


def bundle_id(bundle: BaselineBundle) -> str:
    """The baseline ID of the statement a bundle carries (read, not verified)."""
    return baseline_id(b64.decode(bundle.envelope.payload, Code.BUNDLE_MALFORMED, "the envelope payload"))
