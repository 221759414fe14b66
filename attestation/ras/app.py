"""The RAS HTTP API (FastAPI): challenges, attestation, admin, JWKS, health and metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from teeplane import __version__
from teeplane.attestation.binding import b64url_encode
from teeplane.attestation.ras.models import (
    AttestRequest,
    AttestResponse,
    ChallengeResponse,
    DocumentList,
)
from teeplane.attestation.ras.service import RemoteAttestationService
from teeplane.attestation.ras.store import POLICY, REFERENCE_VALUES
from teeplane.attestation.reference import AppraisalPolicy, ReferenceValues
from teeplane.auth import admin_dependency
from teeplane.errors import TeeplaneError
from teeplane.http import add_health_routes, install_problem_handlers, problem

WORKLOAD_PATH = "/{namespace}/{name}"


class Metrics:
    """Prometheus metrics of one RAS instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attestations = Counter(
            "teeplane_ras_attestations",
            "Attestations by result and error code",
            ["result", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "teeplane_ras_attestation_seconds",
            "Time to handle POST /v1/attest",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )


def create_ras_app(service: RemoteAttestationService, admin_token_hashes: Iterable[str]) -> FastAPI:
    """The RAS application over `service`; admin routes need a bearer token whose hash is listed."""
    hashes = tuple(admin_token_hashes)
    fetches = service.collateral.fetches
    metrics = Metrics()
    app = FastAPI(title="TEEPlane Remote Attestation Service", version=__version__)
    install_problem_handlers(app)
    add_health_routes(app)

    admin = [Depends(admin_dependency(hashes))]

    @app.post("/v1/challenge", response_model=ChallengeResponse)
    async def challenge() -> ChallengeResponse:
        issued = service.challenge()
        return ChallengeResponse(nonce=b64url_encode(issued.nonce), expires_at=issued.expires_at)

    @app.post("/v1/attest", response_model=AttestResponse, responses={403: {}, 400: {}})
    async def attest(request: AttestRequest) -> AttestResponse:
        start = time.perf_counter()
        try:
            # A PCS fetch can take seconds: then the pipeline runs beside the event loop, not in it.
            issued = await asyncio.to_thread(service.attest, request) if fetches else service.attest(request)
        except TeeplaneError as error:
            result = "refused" if error.exit_code == 1 else "invalid"
            metrics.attestations.labels(result, error.code).inc()
            raise
        finally:
            metrics.latency.observe(time.perf_counter() - start)
        metrics.attestations.labels("accepted", "").inc()
        return AttestResponse(token=issued.token, expires_at=issued.expires_at)

    @app.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        return JSONResponse(service.jwks(), headers={"Cache-Control": "max-age=60"})

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.put("/v1/reference-values" + WORKLOAD_PATH, dependencies=admin, status_code=200)
    async def put_reference_values(namespace: str, name: str, body: ReferenceValues) -> ReferenceValues:
        service.put_reference_values(f"{namespace}/{name}", body)
        return body

    @app.get("/v1/reference-values" + WORKLOAD_PATH, dependencies=admin, response_model=ReferenceValues)
    async def get_reference_values(namespace: str, name: str) -> ReferenceValues | JSONResponse:
        found = service.reference_values(f"{namespace}/{name}")
        return found if found is not None else _not_found("reference values", namespace, name)

    @app.delete("/v1/reference-values" + WORKLOAD_PATH, dependencies=admin, status_code=204)
    async def delete_reference_values(namespace: str, name: str) -> Response:
        deleted = service.delete_document(REFERENCE_VALUES, f"{namespace}/{name}")
        return Response(status_code=204) if deleted else _not_found("reference values", namespace, name)

    @app.get("/v1/reference-values", dependencies=admin, response_model=DocumentList)
    async def list_reference_values() -> DocumentList:
        return DocumentList(workloads=service.store.list_documents(REFERENCE_VALUES))

    @app.put("/v1/policies" + WORKLOAD_PATH, dependencies=admin)
    async def put_policy(namespace: str, name: str, body: AppraisalPolicy) -> AppraisalPolicy:
        service.put_policy(f"{namespace}/{name}", body)
        return body

    @app.get("/v1/policies" + WORKLOAD_PATH, dependencies=admin, response_model=AppraisalPolicy)
    async def get_policy(namespace: str, name: str) -> AppraisalPolicy:
        return service.policy(f"{namespace}/{name}")

    @app.delete("/v1/policies" + WORKLOAD_PATH, dependencies=admin, status_code=204)
    async def delete_policy(namespace: str, name: str) -> Response:
        deleted = service.delete_document(POLICY, f"{namespace}/{name}")
        return Response(status_code=204) if deleted else _not_found("policy", namespace, name)

    @app.post("/v1/admin/keys/rotate", dependencies=admin)
    async def rotate() -> dict[str, str]:
        return {"kid": service.rotate_keys()}

    return app


def _not_found(what: str, namespace: str, name: str) -> JSONResponse:
    return problem(404, "request.not_found", f"no {what} for {namespace}/{name}")
