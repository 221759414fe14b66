"""Schemathesis over the TKS OpenAPI: no generated input gets a 5xx, every error is problem+json.

The schema comes from the application itself; the calls go to a real TKS replica (leader of a
one-member etcd) with a real RAS behind it for its JWKS and the KBS handshake. Every operation
gets schema-valid and schema-violating inputs, with the admin token, with no Authorization
header, or with whatever header schemathesis generated. A key exists before each case (admin
operations under test may delete or rotate it), so key routes reach the key server and broker
instead of stopping at "not found".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from etcd_cluster import etcd_cluster
from hypothesis import HealthCheck, settings
from problems import check_no_5xx_and_problem_json
from processes import service
from schemathesis import Case, GenerationMode
from service_files import ServiceFiles
from tks_cluster import LONE_REPLICA

from teeplane.auth import hash_admin_token
from teeplane.tks.app import create_tks_app
from teeplane.tks.kek import FileKek
from teeplane.tks.node import NodeConfig, TksNode

ADMIN_TOKEN = "schemathesis-tks-admin"
KEY = {"id": "fuzzed-key", "policy": {"workloads": ["payments/ledger"], "any_baseline": True}}
FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
ADMIN_PATHS = r"^/v1/keys(/[^/]+)?(/rotate|/policy)?$"

# The schema only: a node that is never started (it connects in its lifespan, which never runs here).
_NODE = TksNode(NodeConfig(["127.0.0.1:1"], "schema", "http://127.0.0.1:1", "iss", "aud"), FileKek(bytes(32)), dict)
schema = schemathesis.openapi.from_dict(create_tks_app(_NODE, [hash_admin_token(ADMIN_TOKEN)]).openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def tks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("tks-schemathesis")
    files = ServiceFiles.write(tmp, ADMIN_TOKEN)
    with etcd_cluster(tmp, 1) as etcd, ExitStack() as stack:
        ras = stack.enter_context(service("ras", files.ras_args(), tmp))
        yield stack.enter_context(service("tks", files.tks_args(etcd.endpoints, ras, *LONE_REPLICA), tmp, "/readyz"))


def _ensure_key(url: str) -> None:
    answer = httpx.post(url + "/v1/keys", json=KEY, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert answer.status_code in (201, 409), answer.text


def _target(case: Case[Any], url: str, existing_key: bool) -> None:
    """Make sure the key exists; point the case at it when asked to."""
    _ensure_key(url)
    if existing_key and case.path_parameters and "key_id" in case.path_parameters:
        case.path_parameters["key_id"] = KEY["id"]


@pytest.mark.parametrize("existing_key", [False, True], ids=["generated-key", "existing-key"])
@schema.exclude(path_regex=ADMIN_PATHS).parametrize()
@FUZZ
def test_public_operations_answer_without_5xx_and_errors_are_problems(
    case: Case[Any], existing_key: bool, tks: str
) -> None:
    _target(case, tks, existing_key)
    check_no_5xx_and_problem_json(case.call(base_url=tks))


@pytest.mark.parametrize("existing_key", [False, True], ids=["generated-key", "existing-key"])
@pytest.mark.parametrize("credentials", ["admin", "none", "generated"])
@schema.include(path_regex=ADMIN_PATHS).parametrize()
@FUZZ
def test_admin_operations_answer_without_5xx_and_errors_are_problems(
    case: Case[Any], credentials: str, existing_key: bool, tks: str
) -> None:
    _target(case, tks, existing_key)
    if credentials != "generated":
        case.headers.pop("authorization", None)
        if credentials == "admin":
            case.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    check_no_5xx_and_problem_json(case.call(base_url=tks))
