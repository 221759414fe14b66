"""BGS request and response bodies (the HTTP contract; also the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from teeplane.baseline.document import ID_PATTERN, BaselineMetadata
from teeplane.baseline.dsse import Envelope
from teeplane.baseline.measurements import ExpectedMeasurements


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignedBaseline(_Model):
    """Publish a baseline signed elsewhere (`teeplane baseline build`): the BGS checks the signature is
    by one of its trusted signing keys and the statement is a valid baseline, then logs it as is."""

    envelope: Envelope


class UnsignedBaseline(_Model):
    """Publish measurements: the BGS writes the baseline document and signs it with its own key."""

    measurements: ExpectedMeasurements
    metadata: BaselineMetadata = BaselineMetadata()


class BaselineRecord(_Model):
    """A logged baseline: its ID, log index, DSSE envelope and c2sp.org/tlog-proof under the current checkpoint."""

    id: str = Field(pattern=ID_PATTERN)
    index: int = Field(ge=0)
    envelope: Envelope
    proof: str
