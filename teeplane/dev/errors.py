"""Typed errors of the development stack."""

from __future__ import annotations

from teeplane.errors import TeeplaneError

NOT_UP = "dev.not_up"
STATE_CORRUPT = "dev.state_corrupt"
HACK_MISSING = "dev.hack_missing"
TOOL_FAILED = "dev.tool_failed"
KUBE_UNAVAILABLE = "dev.kube_unavailable"
COMPONENT_FAILED = "dev.component_failed"


class DevError(TeeplaneError):
    """The development stack is not there, or a part of it could not be built or started (exit code 2)."""
