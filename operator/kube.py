"""The operator's Kubernetes calls (kubernetes_asyncio): server-side apply of what it owns, the
workload's status, and the namespace labels admission and reconcile read."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from teeplane.operator.model import GROUP, PLURAL, VERSION

FIELD_MANAGER = "teeplane-operator"
_APPLY = "application/apply-patch+yaml"
_MERGE = "application/merge-patch+json"


class NotOwnedError(Exception):
    """An object of the name the operator would use exists and belongs to someone else."""


async def _json(response: Any, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The body of a raw (not deserialized) response; None for 404 when `missing_ok`."""
    if missing_ok and response.status == 404:
        response.release()
        return None
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=await response.text())
    body: dict[str, Any] = await response.json()
    return body


class Kube:
    """Typed calls over one API client."""

    def __init__(self, api: client.ApiClient) -> None:
        # kubernetes_asyncio's session trusts the environment: every request would first read the
        # proxy variables and ~/.netrc in two thread hops. Like Kopf's own client, the operator talks
        # to its API server directly.
        api.rest_client.pool_manager._trust_env = False
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    async def apply(self, manifest: dict[str, Any], check_owner: bool = True) -> dict[str, Any]:
        """Create or update a Deployment or Service to match `manifest` (server-side apply, taking back
        any field someone else changed). With `check_owner` (unless this process applied it before),
        raises NotOwnedError if one of that name exists with another controller."""
        meta = manifest["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        read, patch = self._methods(manifest["kind"])
        owner = meta["ownerReferences"][0]["uid"]
        found = (
            await _json(await read(name, namespace, _preload_content=False), missing_ok=True) if check_owner else None
        )
        if found is not None:
            controllers = [r["uid"] for r in found["metadata"].get("ownerReferences", []) if r.get("controller")]
            if controllers != [owner]:
                raise NotOwnedError(f"{manifest['kind']} {namespace}/{name} exists and is not owned by this workload")
        response = await patch(
            name, namespace, manifest, field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY,
            _preload_content=False,
        )  # fmt: skip
        applied = await _json(response)
        assert applied is not None
        return applied

    async def get_workload(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ConfidentialWorkload, or None if it is gone."""
        try:
            found: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the status fields given (a merge patch of the status subresource); a gone object is no error."""
        try:
            await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": status},
                field_manager=FIELD_MANAGER,
                _content_type=_MERGE,  # type: ignore[call-arg]
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The labels of a namespace."""
        found = await self._core.read_namespace(namespace)
        return dict(found.metadata.labels or {})

    def _methods(self, kind: str) -> tuple[Any, Any]:
        if kind == "Deployment":
            return self._apps.read_namespaced_deployment, self._apps.patch_namespaced_deployment
        if kind == "Service":
            return self._core.read_namespaced_service, self._core.patch_namespaced_service
        raise ValueError(f"the operator does not apply {kind}")
