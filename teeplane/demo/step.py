"""A demo step: what was done, whether the outcome was the expected one, and the evidence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """One step of the demo. `ok` is whether the outcome was the expected one (refusals included)."""

    title: str
    ok: bool
    evidence: str
