"""How the API server reaches the admission webhook: this replica's own URL and generated CA, or a
Service that every replica serves with one mounted certificate."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import kopf
import pytest
from operator_stack import TEEPLANE_IMAGE
from processes import free_port

from teeplane.errors import InputError
from teeplane.operator.config import RenderConfig
from teeplane.operator.handlers import Unregistering, build_registry
from teeplane.operator.persistence import HandledSpecs
from teeplane.operator.webhook import ServiceWebhookServer, WebhookService, webhook_server
from teeplane.tls import CertificateAuthority

CONFIG = RenderConfig(TEEPLANE_IMAGE, "https://ras.example", "https://tks.example")


def secret_files(directory: Path) -> bytes:
    """A kubernetes.io/tls Secret's files for the Service's name; the CA certificate."""
    directory.mkdir()
    authority = CertificateAuthority.generate("webhook")
    authority.issue_server(["teeplane-operator-webhook.teeplane-system.svc"]).write(
        directory / "tls.crt", directory / "tls.key"
    )
    (directory / "ca.crt").write_bytes(authority.cert_pem)
    return authority.cert_pem


def test_a_service_is_namespace_slash_name_with_an_optional_port() -> None:
    assert WebhookService.parse("teeplane-system/hook") == WebhookService("teeplane-system", "hook", 443)
    assert WebhookService.parse("ns/hook:8443").port == 8443
    for bad in ("hook", "/hook", "ns/", "ns/a/b", "ns/hook:https"):
        with pytest.raises(InputError, match="expected NAMESPACE/NAME"):
            WebhookService.parse(bad)


def first_client_config(server: kopf.WebhookServer) -> kopf.WebhookClientConfig:
    """What Kopf would write into the webhook configuration once the server listens."""

    async def serve(_: object, **__: object) -> object:
        raise AssertionError("no request expected")

    async def first() -> kopf.WebhookClientConfig:
        configs = server(serve)  # type: ignore[arg-type]
        try:
            return await anext(configs)
        finally:
            await configs.aclose()

    return asyncio.run(first())


def test_behind_a_service_the_configuration_names_it_with_the_secrets_ca(tmp_path: Path) -> None:
    ca = secret_files(tmp_path / "tls")
    service = WebhookService("teeplane-system", "teeplane-operator-webhook")
    server = webhook_server("127.0.0.1", free_port(), tmp_path, tmp_path / "tls", service)
    assert isinstance(server, ServiceWebhookServer)
    config = first_client_config(server)
    assert "url" not in config
    assert config["service"] == {"namespace": "teeplane-system", "name": "teeplane-operator-webhook", "port": 443,
                                 "path": ""}  # fmt: skip
    assert base64.b64decode(config["caBundle"] or "") == ca


def test_a_renewed_secret_is_picked_up_and_its_ca_announced_without_a_restart(tmp_path: Path) -> None:
    first_ca = secret_files(tmp_path / "tls")
    server = webhook_server("127.0.0.1", free_port(), tmp_path, tmp_path / "tls", WebhookService("ns", "hook"))
    server.file_check_interval = 0.05

    async def announced() -> list[bytes]:
        configs = server(lambda *_, **__: None)  # type: ignore[arg-type,return-value]
        try:
            cas = [base64.b64decode((await anext(configs))["caBundle"] or "")]
            following = asyncio.ensure_future(anext(configs))  # Kopf waits for the next one at once
            await asyncio.sleep(0.3)  # serving, and watching the files
            renewed = tmp_path / "renewed"
            secret_files(renewed)
            for name in ("tls.crt", "tls.key", "ca.crt"):  # as the kubelet swaps a Secret's files
                (renewed / name).replace(tmp_path / "tls" / name)
            cas.append(base64.b64decode((await asyncio.wait_for(following, 10))["caBundle"] or ""))
            return cas
        finally:
            await configs.aclose()

    before, after = asyncio.run(announced())
    assert before == first_ca
    assert after != first_ca and after == (tmp_path / "tls" / "ca.crt").read_bytes()


def test_without_a_service_the_replica_names_itself_with_a_ca_of_its_own(tmp_path: Path) -> None:
    port = free_port()
    config = first_client_config(webhook_server("127.0.0.1", port, tmp_path))
    assert config["url"] == f"https://127.0.0.1:{port}"
    assert b"BEGIN CERTIFICATE" in base64.b64decode(config["caBundle"] or "")


def test_a_service_needs_a_certificate_every_replica_shares(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--webhook-service needs --webhook-tls-dir"):
        webhook_server("127.0.0.1", free_port(), tmp_path, None, WebhookService("ns", "hook"))
    with pytest.raises(InputError, match="webhook CA"):
        webhook_server("127.0.0.1", free_port(), tmp_path, tmp_path / "missing", WebhookService("ns", "hook"))


@pytest.mark.parametrize("keep", [False, True])
def test_webhooks_behind_a_service_stay_when_a_replica_stops(keep: bool) -> None:
    """Kopf removes a stopping replica's webhooks from the configuration unless they are persistent:
    right for a replica that named itself, wrong for a Service the other replicas still serve."""
    unused: Any = None  # registering handlers calls none of these
    registry = build_registry(unused, unused, unused, CONFIG, Unregistering(), True, HandledSpecs(), keep_webhooks=keep)
    handlers = registry._webhooks.get_all_handlers()  # Kopf has no public view of its webhook handlers
    assert sorted(h.id for h in handlers) == ["defaults", "validate"]
    assert all(h.persistent is keep for h in handlers)
