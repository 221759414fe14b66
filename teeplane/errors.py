"""Typed errors with stable, machine-readable codes (carried into CLI JSON and RFC 9457 bodies)."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://teeplane.io/problems/"


class TeeplaneError(Exception):
    """An error TEEPlane raises on purpose: a stable `code`, a message, and where it happened.

    `where` names the place that failed: a byte offset, a claim path, a certificate.
    Subclasses set `http_status` and `exit_code` for the HTTP and CLI surfaces.
    """

    http_status = 400
    exit_code = 2

    def __init__(self, code: str, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.where = where

    def __str__(self) -> str:
        suffix = f" (at {self.where})" if self.where else ""
        return f"{self.code}: {self.message}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-ready object: code, message and, when known, where."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.where is not None:
            out["where"] = self.where
        return out

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The error as an RFC 9457 problem details object."""
        problem: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.code,
            "status": self.http_status,
            "detail": str(self),
            "code": self.code,
        }
        if self.where is not None:
            problem["where"] = self.where
        if instance is not None:
            problem["instance"] = instance
        return problem


class InputError(TeeplaneError):
    """Input that cannot be read at all: malformed bytes, files or arguments (exit code 2)."""


class RefusedError(TeeplaneError):
    """Input that was read but does not pass verification or policy (exit code 1)."""

    http_status = 403
    exit_code = 1
