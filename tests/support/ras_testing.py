"""Test support for the attestation services: a simulated TEE, a RAS over a temporary store, evidence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from teeplane.attestation.agent import ephemeral_tee_key
from teeplane.attestation.binding import b64url_decode, b64url_encode, report_data_for
from teeplane.attestation.ras.app import create_ras_app
from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.ras.collateral import CollateralCache
from teeplane.attestation.ras.models import AttestRequest, WorkloadIdentity
from teeplane.attestation.ras.service import RasConfig, RemoteAttestationService
from teeplane.attestation.ras.store import RasStore
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.eventlog import write_event_log
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.attestation.tdx.collateral import load_bundle
from teeplane.attestation.trust import TrustAnchor
from teeplane.auth import hash_admin_token

ADMIN_TOKEN = "test-admin-token"
WORKLOAD = WorkloadIdentity(namespace="payments", name="ledger", pod="ledger-0")
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class Clock:
    """A clock tests can move."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def authority() -> SimulationAuthority:
    return SimulationAuthority.generate(NOW - timedelta(days=1))


def reference_for(td: SimulatedTd, **overrides: Any) -> ReferenceValues:
    """Reference values that accept exactly what `td` measures."""
    m = td.report(b"").measurements()
    values: dict[str, Any] = {
        "tee": "tdx",
        "mrtd": [m["mrtd"]],
        "rtmr1": [m["rtmr1"]],
        "rtmr2": [m["rtmr2"]],
        "rtmr3": [m["rtmr3"]],
        "mrconfigid": [m["mrconfigid"]],
        "baseline_id": "baseline-example-1",
    }
    return ReferenceValues.model_validate(values | overrides)


@dataclass
class Ras:
    """A RAS instance over a store file, with its clock, app and clients."""

    service: RemoteAttestationService
    clock: Clock
    path: Path
    app: Any = field(init=False)

    def __post_init__(self) -> None:
        self.app = create_ras_app(self.service, [hash_admin_token(ADMIN_TOKEN)])

    def client(self, admin: bool = False) -> RasClient:
        return RasClient(http=TestClient(self.app), admin_token=ADMIN_TOKEN if admin else None)


def make_ras(
    path: Path,
    authority: SimulationAuthority,
    clock: Clock | None = None,
    collateral: bytes | None = None,
    **config: Any,
) -> Ras:
    """A RAS trusting the simulation root, with the authority's collateral loaded."""
    clock = clock or Clock()
    cache = CollateralCache()
    cache.add(load_bundle(collateral or bundle_json(authority, NOW - timedelta(hours=1))))
    service = RemoteAttestationService(
        RasStore(path, clock),
        cache,
        RasConfig(simulation_anchor=TrustAnchor(authority.root_cert, simulated=True), clock=clock, **config),
    )
    return Ras(service, clock, path)


@pytest.fixture
def ras(tmp_path: Path, authority: SimulationAuthority) -> Iterator[Ras]:
    """A RAS with the example workload registered and simulated evidence allowed."""
    instance = make_ras(tmp_path / "ras.db", authority)
    td = boot_example_td(authority)
    instance.service.put_reference_values(WORKLOAD.key, reference_for(td))
    instance.service.put_policy(WORKLOAD.key, AppraisalPolicy(allow_simulated=True))
    yield instance
    instance.service.store.close()


def evidence_request(
    td: SimulatedTd,
    nonce: str,
    *,
    runtime_data: dict[str, Any] | None = None,
    bound_runtime_data: dict[str, Any] | None = None,
    workload: WorkloadIdentity = WORKLOAD,
) -> AttestRequest:
    """An attestation request with a quote binding `nonce` and the runtime data (or, to test the
    binding, other runtime data than the request carries)."""
    if runtime_data is None:
        runtime_data = {"tee_pubkey": ephemeral_tee_key()[1]}
    quote = td.quote(report_data_for(b64url_decode(nonce, "nonce"), bound_runtime_data or runtime_data))
    return AttestRequest(
        nonce=nonce,
        tee="tdx",
        evidence=b64url_encode(quote),
        event_log=b64url_encode(write_event_log(td.events)),
        runtime_data=runtime_data,
        workload=workload,
    )
