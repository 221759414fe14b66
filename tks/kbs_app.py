"""The KBS-compatible HTTP surface of TKS (see `teeplane.tks.kbs` for the protocol)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Cookie, Header, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from teeplane.attestation.ras.models import WorkloadIdentity
from teeplane.errors import InputError
from teeplane.remote import RemoteError, raise_for_problem
from teeplane.tks.kbs import (
    COOKIE,
    KbsChallenge,
    KbsRequest,
    KbsUnauthorized,
    attest_request,
    challenge_for,
    flattened_jwe,
    key_for_resource,
    open_session,
    read_session,
    session_cookie,
)

SESSION_SECONDS = 300
Release = Callable[[str, str | None], str]

_COOKIE = Annotated[str | None, Cookie(alias=COOKIE)]
_AUTHORIZATION = Annotated[str | None, Header()]


def kbs_router(ras: httpx.AsyncClient | None, release: Release) -> APIRouter:
    """Routes at `/kbs/v0/...` and `/workloads/{namespace}/{name}/kbs/v0/...`.

    `ras` talks to RAS (None: the surface answers 503 `kbs.unavailable`); `release(key_id,
    authorization)` is the Key Broker's release, returning a compact JWE.
    """
    router = APIRouter(tags=["KBS protocol (Confidential Containers)"])

    async def ras_call(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if ras is None:
            raise RemoteError("kbs.unavailable", "this TKS has no RAS configured (--ras-url)", 503)
        try:
            response = await ras.post(path, json=body)
        except httpx.HTTPError as exc:
            raise RemoteError("service.unreachable", f"RAS did not answer: {exc}", 503) from None
        raise_for_problem(response)
        answer = response.json()
        assert isinstance(answer, dict)
        return answer

    async def auth(request: KbsRequest, workload: WorkloadIdentity | None, response: Response) -> KbsChallenge:
        nonce = str((await ras_call("/v1/challenge"))["nonce"])
        session = open_session(request, nonce, workload)
        response.set_cookie(COOKIE, session_cookie(session), max_age=SESSION_SECONDS, httponly=True)
        return challenge_for(nonce)

    async def attest(cookie: str | None, attestation: dict[str, Any]) -> JSONResponse:
        body = attest_request(read_session(cookie), attestation)
        try:
            answer = await ras_call("/v1/attest", body.model_dump(mode="json"))
        except RemoteError as refused:
            if refused.http_status != 403:
                raise
            # The protocol answers a failed attestation with 401 and the reason.
            raise KbsUnauthorized(refused.code, refused.message) from None
        token = str(answer["token"])
        reply = JSONResponse({"token": token})
        reply.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True)
        return reply

    def resource(cookie: str | None, authorization: str | None, repository: str, kind: str, tag: str) -> JSONResponse:
        key_id = key_for_resource(repository, kind, tag)
        if authorization is None and cookie and "." in cookie:
            authorization = f"Bearer {cookie}"
        if authorization is None:
            raise KbsUnauthorized("kbs.session_missing", "attest first (POST /kbs/v0/auth, then /kbs/v0/attest)")
        return JSONResponse(flattened_jwe(release(key_id, authorization)))

    @router.post("/kbs/v0/auth", response_model=KbsChallenge, response_model_by_alias=True)
    async def kbs_auth(request: KbsRequest, response: Response) -> KbsChallenge:
        """Start a handshake; the workload comes from `extra-params.workload`."""
        return await auth(request, None, response)

    @router.post("/workloads/{namespace}/{name}/kbs/v0/auth", response_model=KbsChallenge, response_model_by_alias=True)
    async def kbs_workload_auth(namespace: str, name: str, request: KbsRequest, response: Response) -> KbsChallenge:
        """Start a handshake for the workload the URL names."""
        return await auth(request, _workload(namespace, name), response)

    @router.post("/kbs/v0/attest")
    async def kbs_attest(attestation: Annotated[dict[str, Any], Body()], cookie: _COOKIE = None) -> JSONResponse:
        """Attest with the evidence for the session's nonce; the answer is the attestation token."""
        return await attest(cookie, attestation)

    @router.post("/workloads/{namespace}/{name}/kbs/v0/attest")
    async def kbs_workload_attest(
        namespace: str, name: str, attestation: Annotated[dict[str, Any], Body()], cookie: _COOKIE = None
    ) -> JSONResponse:
        """As /kbs/v0/attest (the session names the workload)."""
        _workload(namespace, name)
        return await attest(cookie, attestation)

    @router.get("/kbs/v0/resource/{repository}/{kind}/{tag}")
    async def kbs_resource(
        repository: str, kind: str, tag: str, cookie: _COOKIE = None, authorization: _AUTHORIZATION = None
    ) -> JSONResponse:
        """Key `<repository>.<kind>.<tag>`, as a flattened JWE for the attested TEE key."""
        return resource(cookie, authorization, repository, kind, tag)

    @router.get("/workloads/{namespace}/{name}/kbs/v0/resource/{repository}/{kind}/{tag}")
    async def kbs_workload_resource(
        namespace: str,
        name: str,
        repository: str,
        kind: str,
        tag: str,
        cookie: _COOKIE = None,
        authorization: _AUTHORIZATION = None,
    ) -> JSONResponse:
        """As /kbs/v0/resource (the token names the workload; the key's policy decides)."""
        _workload(namespace, name)
        return resource(cookie, authorization, repository, kind, tag)

    return router


def _workload(namespace: str, name: str) -> WorkloadIdentity:
    try:
        return WorkloadIdentity(namespace=namespace, name=name)
    except ValidationError:
        raise InputError(
            "kbs.workload_unknown", f"{namespace}/{name} is not a Kubernetes namespace/name", where="path"
        ) from None
