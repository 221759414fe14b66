"""A typed client for the Trusted Key Service: the admin API and releases."""

from __future__ import annotations

from typing import Any

from teeplane.remote import ServiceClient, parse_response
from teeplane.tks.models import CreateKey, KeyList, KeyMetadata, ReleasePolicy, RotateKey


class TksClient(ServiceClient):
    """TKS over HTTP. Admin calls need the admin token; errors are RemoteError with TKS's code."""

    service = "TKS"

    def create(self, key: CreateKey) -> KeyMetadata:
        """Create a key (generated, or the given secret)."""
        return self._metadata("POST", "/v1/keys", key.model_dump(mode="json", exclude_none=True))

    def list(self) -> list[str]:
        """The IDs of all keys."""
        return parse_response(KeyList, self._json("GET", "/v1/keys"), self.service).keys

    def show(self, key_id: str) -> KeyMetadata:
        """A key's metadata: versions and release policy (never its material)."""
        return self._metadata("GET", f"/v1/keys/{key_id}")

    def rotate(self, key_id: str, value: str | None = None) -> KeyMetadata:
        """A new version of a key (generated, or the new secret value, base64url)."""
        return self._metadata("POST", f"/v1/keys/{key_id}/rotate", RotateKey(value=value).model_dump(exclude_none=True))

    def set_policy(self, key_id: str, policy: ReleasePolicy) -> KeyMetadata:
        """Replace a key's release policy."""
        return self._metadata("PUT", f"/v1/keys/{key_id}/policy", policy.model_dump(mode="json"))

    def delete(self, key_id: str) -> None:
        """Delete a key and every version of it."""
        self._call("DELETE", f"/v1/keys/{key_id}")

    def release(self, key_id: str, token: str, version: int | None = None) -> str:
        """The key as a compact JWE for the TEE key the attestation token names."""
        path = f"/v1/keys/{key_id}/release" + (f"?version={version}" if version is not None else "")
        return self._call("POST", path, headers={"Authorization": f"Bearer {token}"}).text

    def cluster(self) -> dict[str, Any]:
        """Leader, members and revision as this replica sees them."""
        body = self._json("GET", "/v1/cluster")
        return body if isinstance(body, dict) else {}

    def _metadata(self, method: str, path: str, json: Any = None) -> KeyMetadata:
        return parse_response(KeyMetadata, self._json(method, path, json), self.service)
