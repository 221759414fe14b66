"""HTTP service bootstrap shared by every TEEPlane service: RFC 9457 problem+json errors, health
routes, and running an ASGI app with uvicorn."""

from __future__ import annotations

import gc
import logging
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from teeplane.errors import PROBLEM_TYPE_BASE, TeeplaneError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("teeplane.http")


def problem(status: int, code: str, detail: str, instance: str | None = None, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem details response with a stable `code`."""
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + code, "title": code, "status": status, "detail": detail}
    body["code"] = code
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def install_problem_handlers(app: FastAPI) -> None:
    """Turn every error into problem+json: typed errors keep their code and status, request
    validation becomes `request.invalid` (422), anything unexpected `internal` (500, logged)."""

    async def on_teeplane(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TeeplaneError)
        body = exc.to_problem(instance=request.url.path)
        return JSONResponse(body, status_code=exc.http_status, media_type=PROBLEM_JSON)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "request.invalid", detail, request.url.path, errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "request.not_found", 405: "request.method_not_allowed"}.get(exc.status_code, "request.error")
        return problem(exc.status_code, code, str(exc.detail), request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "internal", "internal error", request.url.path)

    app.add_exception_handler(TeeplaneError, on_teeplane)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


def add_health_routes(app: FastAPI) -> None:
    """`/healthz` and `/readyz` for a service that is ready as soon as it answers."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}


def serve(app: FastAPI, host: str, port: int, *, certfile: str | None = None, keyfile: str | None = None) -> None:
    """Run `app` with uvicorn until interrupted (TLS when a certificate is given).

    Everything built so far is moved out of the garbage collector's view first, and young
    collections run less often, so collections under load walk only what requests allocate and
    do not pause the service for long.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        log_level="info",
        access_log=False,
    )
