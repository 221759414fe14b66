"""The BGS HTTP API (FastAPI): publish and fetch baselines, the log as C2SP tlog-tiles, health and metrics.

- `POST /v1/baselines` (admin bearer token): a pre-signed envelope (`{"envelope"}`) or measurements
  with metadata (`{"measurements", "metadata"}`, signed by the BGS). 201 with the record when it was
  added, 200 with the logged record when the baseline was already in the log, 409
  (`baseline.version_exists`) when its name@version already names another baseline.
- `GET /v1/baselines/{id or name@version}`: the envelope and a c2sp.org/tlog-proof under the current
  checkpoint.
- `GET /checkpoint`, `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]` (c2sp.org/tlog-tiles):
  full tiles are immutable and cached for a year; partial tiles and the checkpoint are not cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from teeplane import __version__
from teeplane.auth import admin_dependency
from teeplane.baseline.document import ID_PATTERN, REFERENCE_PATTERN
from teeplane.baseline.service.models import BaselineRecord, SignedBaseline, UnsignedBaseline
from teeplane.baseline.service.registry import BaselineRegistry, Published
from teeplane.errors import TeeplaneError
from teeplane.http import add_health_routes, install_problem_handlers, problem

CHECKPOINT_TYPE = "text/plain; charset=utf-8"
TILE_TYPE = "application/octet-stream"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


class Metrics:
    """Prometheus metrics of one BGS instance."""

    def __init__(self, registry: BaselineRegistry) -> None:
        self.registry = CollectorRegistry()
        self.publications = Counter(
            "teeplane_bgs_publications",
            "Publish requests by result (created, existing, refused, invalid) and error code",
            ["result", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "teeplane_bgs_publish_seconds",
            "Time to handle POST /v1/baselines",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        size = Gauge("teeplane_bgs_log_entries", "Entries in the transparency log", registry=self.registry)
        size.set_function(lambda: registry.size)


def create_bgs_app(registry: BaselineRegistry, admin_token_hashes: Iterable[str]) -> FastAPI:
    """The BGS application over `registry`; publishing needs a bearer token whose hash is listed."""
    metrics = Metrics(registry)
    app = FastAPI(title="TEEPlane Baseline Generation System", version=__version__)
    install_problem_handlers(app)
    add_health_routes(app)
    admin = [Depends(admin_dependency(tuple(admin_token_hashes)))]

    @app.post(
        "/v1/baselines",
        dependencies=admin,
        response_model=BaselineRecord,
        status_code=201,
        responses={
            200: {"model": BaselineRecord, "description": "already in the log"},
            **{status: {} for status in (400, 401, 403, 409)},
        },
    )
    def publish(body: SignedBaseline | UnsignedBaseline, response: Response) -> BaselineRecord:
        start = time.perf_counter()
        try:
            if isinstance(body, SignedBaseline):
                published: Published = registry.publish(body.envelope)
            else:
                published = registry.publish_measurements(body.measurements, body.metadata)
        except TeeplaneError as error:
            result = "refused" if error.exit_code == 1 else "invalid"
            metrics.publications.labels(result, error.code).inc()
            raise
        finally:
            metrics.latency.observe(time.perf_counter() - start)
        metrics.publications.labels("created" if published.created else "existing", "").inc()
        response.status_code = 201 if published.created else 200
        return published.record

    @app.get("/v1/baselines/{wanted}", response_model=BaselineRecord, responses={404: {}})
    def get_baseline(
        wanted: Annotated[str, Path(pattern=f"{ID_PATTERN}|{REFERENCE_PATTERN}", description="ID or name@version")],
    ) -> BaselineRecord:
        return registry.get(wanted)

    @app.get("/checkpoint", response_class=Response, responses={200: {"content": {CHECKPOINT_TYPE: {}}}})
    def checkpoint() -> Response:
        return Response(registry.checkpoint, media_type=CHECKPOINT_TYPE, headers={"Cache-Control": NO_CACHE})

    @app.get(
        "/tile/{tile_path:path}",
        response_class=Response,
        responses={200: {"content": {TILE_TYPE: {}}}, 404: {}},
    )
    def tile(tile_path: str) -> Response:
        found = registry.tile("tile/" + tile_path)
        if found is None:
            return problem(404, "request.not_found", f"no tile {tile_path} in the log")
        cache = IMMUTABLE if found.tile.full else NO_CACHE
        return Response(found.data, media_type=TILE_TYPE, headers={"Cache-Control": cache})

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
