"""Schemathesis over the BGS OpenAPI: no generated input gets a 5xx, every error is problem+json.

A real BaselineRegistry (temporary state directory, a few baselines already logged) serves the app
in-process (ASGI). Publishing gets schema-valid and schema-violating bodies with the admin bearer
token, with no Authorization header, or with whatever header schemathesis generated; the public
routes (baselines by ID, checkpoint, tiles) get generated paths.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from baseline_testing import NOW, measurements, signed
from hypothesis import HealthCheck, settings
from problems import check_no_5xx_and_problem_json
from schemathesis import Case, GenerationMode

from teeplane.auth import hash_admin_token
from teeplane.baseline.keys import generate_signer
from teeplane.baseline.service.app import create_bgs_app
from teeplane.baseline.service.registry import BaselineRegistry
from teeplane.baseline.tlog.note import Signer as LogSigner

ADMIN_TOKEN = "schemathesis-admin-token"
FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
SIGNER = generate_signer()

# Schemathesis parametrizes at collection time, so the service exists from import on; the
# directory goes at interpreter exit.
_STATE = tempfile.TemporaryDirectory(prefix="teeplane-bgs-schemathesis-")
REGISTRY = BaselineRegistry.open(Path(_STATE.name), LogSigner.generate("example.com/fuzz"), SIGNER, (), lambda: NOW)
for _seed in range(3):
    REGISTRY.publish(signed(_seed, SIGNER))
REGISTRY.publish_measurements(measurements(3))
APP = create_bgs_app(REGISTRY, [hash_admin_token(ADMIN_TOKEN)])
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module", autouse=True)
def _close_registry() -> Iterator[None]:
    yield
    REGISTRY.close()


@schema.exclude(method="POST").parametrize()
@FUZZ
def test_public_operations_answer_without_5xx_and_errors_are_problems(case: Case[Any]) -> None:
    check_no_5xx_and_problem_json(case.call())


@pytest.mark.parametrize("credentials", ["admin", "none", "generated"])
@schema.include(path="/v1/baselines", method="POST").parametrize()
@FUZZ
def test_publishing_answers_without_5xx_and_errors_are_problems(case: Case[Any], credentials: str) -> None:
    if credentials != "generated":
        case.headers.pop("authorization", None)
    if credentials == "admin":
        case.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    check_no_5xx_and_problem_json(case.call())


def test_the_routes_under_test_exist() -> None:
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    assert operations == {
        ("POST", "/v1/baselines"),
        ("GET", "/v1/baselines/{wanted}"),
        ("GET", "/checkpoint"),
        ("GET", "/tile/{tile_path}"),
    }
