"""Schemathesis over the RAS OpenAPI: no generated input gets a 5xx, every error is problem+json.

A real RemoteAttestationService (temp SQLite store, simulation root and collateral, one workload
registered with a policy that allows simulated evidence) serves the app in-process (ASGI). Every
operation, admin routes included, gets schema-valid and schema-violating inputs, with the admin
bearer token, with no Authorization header, or with whatever header schemathesis generated. A
second test sends generated attestation bodies that carry a fresh nonce, the registered workload
and a simulated quote bound to the generated runtime data, so they reach appraisal, reference
values and token issuance instead of stopping at the nonce check.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from problems import check_no_5xx_and_problem_json
from schemathesis import Case, GenerationMode
from schemathesis.schemas import BaseSchema

from teeplane.attestation.agent import ephemeral_tee_key
from teeplane.attestation.binding import b64url_encode, report_data_for
from teeplane.attestation.ras.app import create_ras_app
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.service import RasConfig, RemoteAttestationService
from teeplane.attestation.ras.store import RasStore
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.trust import TrustAnchor
from teeplane.auth import hash_admin_token
from teeplane.errors import TeeplaneError

ADMIN_TOKEN = "schemathesis-admin-token"
NAMESPACE, NAME = "default", "app"
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
#: A real public P-256 JWK (the agent's ephemeral key), for requests meant to reach token issuance.
TEE_JWK = ephemeral_tee_key()[1]
#: The routes that need the admin bearer token.
ADMIN_PATHS = r"^/v1/(reference-values|policies|admin)(/|$)"


@dataclass(frozen=True)
class Ras:
    """The service under test and the simulated TD whose evidence it accepts."""

    service: RemoteAttestationService
    td: SimulatedTd
    app: FastAPI
    schema: BaseSchema

    def register(self) -> None:
        """(Re-)register the workload: admin routes under test may have overwritten or deleted it."""
        self.service.put_reference_values(f"{NAMESPACE}/{NAME}", ReferenceValues(tee="tdx", mrtd=[self.td.mrtd.hex()]))
        self.service.put_policy(f"{NAMESPACE}/{NAME}", AppraisalPolicy(allow_simulated=True))


def _start_ras(state: Path) -> Ras:
    now = datetime.now(UTC)
    authority = SimulationAuthority.generate(now)
    collateral = CollateralCache()
    collateral.add(load_bundle(bundle_json(authority, now)))
    config = RasConfig(simulation_anchor=TrustAnchor(authority.root_cert, simulated=True))
    service = RemoteAttestationService(RasStore(state / "ras.db"), collateral, config)
    app = create_ras_app(service, [hash_admin_token(ADMIN_TOKEN)])
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    ras = Ras(service, boot_example_td(authority), app, loaded)
    ras.register()
    return ras


# Schemathesis parametrizes at collection time, so the service exists from import on (its lazy
# `from_fixture` loader does not run under this pytest); the directory goes at interpreter exit.
_STATE = tempfile.TemporaryDirectory(prefix="teeplane-ras-schemathesis-")
RAS = _start_ras(Path(_STATE.name))
schema = RAS.schema


@pytest.fixture(scope="module", autouse=True)
def _close_store() -> Iterator[None]:
    yield
    RAS.service.store.close()


def _set_credentials(case: Case[Any], credentials: str) -> None:
    """The admin bearer token, no Authorization header at all, or the one schemathesis generated."""
    if credentials == "generated":
        return
    case.headers.pop("authorization", None)
    if credentials == "admin":
        case.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"


@schema.exclude(path_regex=ADMIN_PATHS).parametrize()
@FUZZ
def test_public_operations_answer_without_5xx_and_errors_are_problems(case: Case[Any]) -> None:
    check_no_5xx_and_problem_json(case.call())


@pytest.mark.parametrize("credentials", ["admin", "none", "generated"])
@schema.include(path_regex=ADMIN_PATHS).parametrize()
@FUZZ
def test_admin_operations_answer_without_5xx_and_errors_are_problems(case: Case[Any], credentials: str) -> None:
    _set_credentials(case, credentials)
    check_no_5xx_and_problem_json(case.call())


def _bind(body: dict[str, Any], tee_pubkey: dict[str, Any] | None = None) -> None:
    """Give a generated attestation body a fresh nonce and the registered workload, and evidence
    bound to its runtime data when that data has a canonical form (`tee_pubkey` replaces the
    generated key, so that the request can reach token issuance)."""
    nonce = RAS.service.challenge().nonce
    body["nonce"] = b64url_encode(nonce)
    body["tee"] = "tdx"
    body["workload"] = {"namespace": NAMESPACE, "name": NAME}
    runtime_data = body.get("runtime_data")
    if not isinstance(runtime_data, dict):
        return
    if tee_pubkey is not None:
        runtime_data["tee_pubkey"] = tee_pubkey
    try:
        report_data = report_data_for(nonce, runtime_data)
    except TeeplaneError:
        return
    body["evidence"] = b64url_encode(RAS.td.quote(report_data))


@pytest.mark.parametrize("real_key", [False, True], ids=["generated-key", "real-key"])
@schema.include(path="/v1/attest", method="POST").parametrize()
@FUZZ
def test_attest_with_a_fresh_nonce_and_bound_evidence_answers_without_5xx(case: Case[Any], real_key: bool) -> None:
    RAS.register()
    if isinstance(case.body, dict):
        _bind(case.body, TEE_JWK if real_key else None)
    check_no_5xx_and_problem_json(case.call())


def test_bound_evidence_with_a_public_key_gets_a_token() -> None:
    """The binding above is right: with a real public JWK as runtime data, RAS issues a token."""
    RAS.register()
    body: dict[str, Any] = {"runtime_data": {}}
    _bind(body, TEE_JWK)
    response = TestClient(RAS.app).post("/v1/attest", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["token"].count(".") == 2
