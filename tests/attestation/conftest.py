"""Fixtures of the attestation service tests (defined in tests/support/ras_testing.py)."""

from ras_testing import authority, ras

__all__ = ["authority", "ras"]
