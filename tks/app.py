"""The TKS HTTP API: release on every replica, admin writes on the leader (forwarded from followers)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from teeplane import __version__
from teeplane.auth import admin_dependency
from teeplane.errors import TeeplaneError
from teeplane.http import install_problem_handlers, problem
from teeplane.tks.kbs_app import kbs_router
from teeplane.tks.keyserver import KeyNotFoundError
from teeplane.tks.models import CreateKey, KeyList, KeyMetadata, ReleasePolicy, RotateKey
from teeplane.tks.node import TksNode
from teeplane.tls import Verify

FORWARDED = "x-teeplane-forwarded-by"
JOSE = "application/jose"


def create_tks_app(
    node: TksNode, admin_token_hashes: Iterable[str], *, ras_url: str | None = None, verify: Verify = True
) -> FastAPI:
    """The TKS application for one replica; `ras_url` enables the KBS-compatible surface, `verify`
    checks the TLS certificates of RAS and of the other replicas."""
    forwarder = httpx.AsyncClient(timeout=10.0, verify=verify)
    ras = httpx.AsyncClient(base_url=ras_url, timeout=10.0, verify=verify) if ras_url else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()
            await forwarder.aclose()
            if ras is not None:
                await ras.aclose()

    app = FastAPI(title="TEEPlane Trusted Key Service", version=__version__, lifespan=lifespan)
    install_problem_handlers(app)
    admin = [Depends(admin_dependency(admin_token_hashes))]
    registry = CollectorRegistry()
    releases = Counter(
        "teeplane_tks_releases", "Key releases by result and code", ["result", "code"], registry=registry
    )
    latency = Histogram(
        "teeplane_tks_release_seconds",
        "Time to handle a release",
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
        registry=registry,
    )

    async def on_leader(request: Request, write: Callable[[], Awaitable[Response]]) -> Response:
        """Run a write here if this replica leads, else forward it to the leader once."""
        if node.election.is_leader:
            return await write()
        leader = node.election.leader()
        if leader is None or leader[0] == node.config.member_id or request.headers.get(FORWARDED):
            return problem(503, "cluster.no_leader", "no leader is elected right now; retry shortly")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        headers[FORWARDED] = node.config.member_id
        try:
            answer = await forwarder.request(
                request.method,
                leader[1].rstrip("/") + request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return problem(503, "cluster.leader_unreachable", f"the leader {leader[0]} did not answer: {exc}")
        kept = {k: v for k, v in answer.headers.items() if k.lower() == "content-type"}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    def metadata_json(meta: KeyMetadata, status: int = 200) -> Response:
        return Response(meta.model_dump_json(), status_code=status, media_type="application/json")

    def release_jwe(key_id: str, authorization: str | None, version: int | None = None) -> str:
        """A release through the Key Broker, counted and timed."""
        start = time.perf_counter()
        try:
            jwe = node.broker.release(key_id, authorization, version)
        except TeeplaneError as error:
            releases.labels("refused", error.code).inc()
            raise
        finally:
            latency.observe(time.perf_counter() - start)
        releases.labels("released", "").inc()
        return jwe

    @app.post("/v1/keys/{key_id}/release", responses={200: {"content": {JOSE: {}}}})
    async def release(
        key_id: str, authorization: Annotated[str | None, Header()] = None, version: int | None = None
    ) -> Response:
        return Response(release_jwe(key_id, authorization, version), media_type=JOSE)

    @app.post("/v1/keys", dependencies=admin, status_code=201, response_model=KeyMetadata)
    async def create_key(request: Request, body: CreateKey) -> Response:
        async def write() -> Response:
            meta, revision = await node.keys.create(body)
            await node.view.wait_for(revision)
            return metadata_json(meta, 201)

        return await on_leader(request, write)

    @app.get("/v1/keys", dependencies=admin)
    async def list_keys() -> KeyList:
        return KeyList(keys=sorted(node.view.metadata))

    @app.get("/v1/keys/{key_id}", dependencies=admin, response_model=KeyMetadata)
    async def show_key(key_id: str) -> Response:
        meta = node.view.metadata.get(key_id)
        if meta is None:
            raise KeyNotFoundError("tks.key_not_found", f"no key {key_id!r}", where="id")
        return metadata_json(meta)

    @app.post("/v1/keys/{key_id}/rotate", dependencies=admin, response_model=KeyMetadata)
    async def rotate_key(request: Request, key_id: str, body: RotateKey) -> Response:
        async def write() -> Response:
            meta, revision = await node.keys.rotate(key_id, body)
            await node.view.wait_for(revision)
            return metadata_json(meta)

        return await on_leader(request, write)

    @app.put("/v1/keys/{key_id}/policy", dependencies=admin, response_model=KeyMetadata)
    async def set_policy(request: Request, key_id: str, body: ReleasePolicy) -> Response:
        async def write() -> Response:
            meta, revision = await node.keys.set_policy(key_id, body)
            await node.view.wait_for(revision)
            return metadata_json(meta)

        return await on_leader(request, write)

    @app.delete("/v1/keys/{key_id}", dependencies=admin, status_code=204)
    async def delete_key(request: Request, key_id: str) -> Response:
        async def write() -> Response:
            await node.view.wait_for(await node.keys.delete(key_id))
            return Response(status_code=204)

        return await on_leader(request, write)

    @app.get("/v1/cluster")
    async def cluster() -> dict[str, Any]:
        leader = node.election.leader()
        return {
            "member": node.config.member_id,
            "leader": {"id": leader[0], "url": leader[1]} if leader else None,
            "is_leader": node.election.is_leader,
            "members": [{"id": m, "url": u} for m, u in await node.election.members()],
            "revision": node.view.revision,
        }

    app.include_router(kbs_router(ras, release_jwe))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """200 on the leader, 429 on a follower (as Vault answers), so balancers can find the leader."""
        if node.election.is_leader:
            return JSONResponse({"status": "leader"})
        return JSONResponse({"status": "follower"}, status_code=429)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        if node.view.synced.is_set():
            return JSONResponse({"status": "ready", "revision": node.view.revision})
        return problem(503, "service.not_ready", "the key view is not synced yet")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
