"""Shared fixtures: third-party test data read in place from ../shared/testdata (the genuine
evidence corpus, the Merkle proof vectors).

On a user's clone without it, tests that need it skip and say why. CI sets
TEEPLANE_REQUIRE_CORPUS=1, which turns that skip into a failure, and TEEPLANE_NO_SKIPS=1,
which fails the run if any test skipped at all.

Hypothesis explores new examples on every local run (that is how the fuzz tests find bugs); CI
loads the `ci` profile (HYPOTHESIS_PROFILE=ci), which derandomizes them, so a landing run checks
a fixed set of examples and fails only on a regression.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parent.parent
SHARED_TESTDATA = Path(os.environ.get("TEEPLANE_TESTDATA", REPO.parent / "shared" / "testdata"))


def _require(path: Path, what: str) -> Path:
    if path.is_dir():
        return path
    reason = (
        f"{what} not found at {path}: these tests read third-party test data in place from "
        "../shared/testdata (set TEEPLANE_TESTDATA to point elsewhere)"
    )
    if os.environ.get("TEEPLANE_REQUIRE_CORPUS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The attestation corpus directory (tdx/, snp/)."""
    return _require(SHARED_TESTDATA / "attestation", "the attestation corpus")


@pytest.fixture(scope="session")
def merkle_vectors() -> Path:
    """The RFC 6962/9162 Merkle proof vectors (inclusion/, consistency/, subtreeinclusion/, subtreeconsistency/)."""
    return _require(SHARED_TESTDATA / "merkle", "the Merkle proof vectors")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With TEEPLANE_NO_SKIPS=1 (CI), any skipped test fails the run."""
    if os.environ.get("TEEPLANE_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        reporter.write_line(f"TEEPLANE_NO_SKIPS=1: {skipped} test(s) skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
