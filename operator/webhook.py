"""The admission webhook server and how the API server reaches it.

By default (development, tests) a replica serves the webhooks with a certificate from a CA it
generates when it starts, and the webhook configuration points at its own address: the last replica
to start owns it, and Kopf removes the webhooks when that replica stops.

With a Service (`--webhook-service`, what the chart does) every replica serves one certificate (a
mounted kubernetes.io/tls Secret), and the configuration names the Service: it is the same whichever
replica writes it, any ready replica answers, and it is kept when a replica stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import kopf

from teeplane.errors import InputError
from teeplane.io import read_file
from teeplane.tls import CertificateAuthority

#: The files of a kubernetes.io/tls Secret.
CERT_FILE, KEY_FILE, CA_FILE = "tls.crt", "tls.key", "ca.crt"


@dataclass(frozen=True)
class WebhookService:
    """The Service in front of the replicas' webhook servers."""

    namespace: str
    name: str
    port: int = 443

    @classmethod
    def parse(cls, value: str) -> WebhookService:
        """NAMESPACE/NAME[:PORT], or InputError naming the option."""
        reference, _, port = value.partition(":")
        namespace, _, name = reference.partition("/")
        if not namespace or not name or "/" in name or (port and not port.isdigit()):
            raise InputError("input.unreadable", f"--webhook-service {value}: expected NAMESPACE/NAME[:PORT]")
        return cls(namespace, name, int(port) if port else 443)


class ServiceWebhookServer(kopf.WebhookServer):
    """Kopf's webhook server, announced to the API server as a Service rather than its own URL."""

    def __init__(self, service: WebhookService, *, addr: str, port: int, tls_dir: Path) -> None:
        # Kopf re-reads the files when they change (a renewed Secret), and announces the new CA.
        super().__init__(addr=addr, port=port, certfile=tls_dir / CERT_FILE, pkeyfile=tls_dir / KEY_FILE,
                         cafile=tls_dir / CA_FILE)  # fmt: skip
        self.service = service

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        """The configuration Kopf writes: the Service, and the CA bundle of the served certificate."""
        async for served in super().__call__(fn):
            target: kopf.WebhookClientConfigService = {
                "namespace": self.service.namespace, "name": self.service.name, "port": self.service.port, "path": "",
            }  # fmt: skip
            yield kopf.WebhookClientConfig(caBundle=served.get("caBundle"), service=target)


def webhook_server(
    host: str, port: int, work_dir: Path, tls_dir: Path | None = None, service: WebhookService | None = None
) -> kopf.WebhookServer:
    """A webhook server on HOST:PORT: with the certificate in `tls_dir` (a kubernetes.io/tls Secret's
    files), or one from a CA generated for this run (written under `work_dir`); behind `service` if given."""
    if tls_dir is None:
        if service is not None:
            raise InputError("input.unreadable", "--webhook-service needs --webhook-tls-dir: every replica must serve "
                             "a certificate from one CA")  # fmt: skip
        authority = CertificateAuthority.generate("teeplane-operator-webhook")
        authority.issue_server([host]).write(work_dir / CERT_FILE, work_dir / KEY_FILE)
        return kopf.WebhookServer(addr=host, port=port, host=host, certfile=work_dir / CERT_FILE,
                                  pkeyfile=work_dir / KEY_FILE, cadata=authority.cert_pem)  # fmt: skip
    for name, what in ((CA_FILE, "webhook CA"), (CERT_FILE, "webhook certificate"), (KEY_FILE, "webhook key")):
        read_file(tls_dir / name, what)  # present and readable, or a clear error now
    if service is None:
        return kopf.WebhookServer(addr=host, port=port, host=host, certfile=tls_dir / CERT_FILE,
                                  pkeyfile=tls_dir / KEY_FILE, cafile=tls_dir / CA_FILE)  # fmt: skip
    return ServiceWebhookServer(service, addr=host, port=port, tls_dir=tls_dir)
