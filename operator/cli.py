"""`teeplane operator run` (the operator and its admission webhooks) and `teeplane operator crd`."""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import kopf
import typer
from kubernetes_asyncio import client, config
from securesystemslib.signer import Key

from teeplane.attestation.ras.client import RasClient
from teeplane.baseline.keys import load_log_verifier, load_public_key
from teeplane.errors import InputError, TeeplaneError
from teeplane.io import read_file
from teeplane.operator.baselines import BgsBaselines
from teeplane.operator.config import Placement, RenderConfig, default_placements
from teeplane.operator.crd import CHART_CRD_PATH, crd_yaml
from teeplane.operator.handlers import Unregistering, build_registry, configure, post_event
from teeplane.operator.kube import Kube
from teeplane.operator.model import TEES, Tee
from teeplane.operator.persistence import HandledSpecs
from teeplane.operator.reconcile import Reconciler, Services
from teeplane.operator.webhook import WebhookService, webhook_server
from teeplane.tks.client import TksClient
from teeplane.tls import trusting

app = typer.Typer(help="The ConfidentialWorkload operator.", no_args_is_help=True)
SERVICE_TIMEOUT = 10.0
#: At most this many workloads are handled (and connections to the API server open) at once.
CONCURRENCY = 16


@app.command("crd")
def crd_command(
    output: Annotated[Path | None, typer.Option(help=f"Write here (e.g. {CHART_CRD_PATH}) instead of stdout.")] = None,
) -> None:
    """Print the ConfidentialWorkload CRD, generated from the operator's models."""
    if output is None:
        typer.echo(crd_yaml(), nl=False)
    else:
        output.write_text(crd_yaml())


@app.command("run")
def run_command(
    ras_url: Annotated[str, typer.Option(help="RAS base URL (the operator's and the pods').")],
    ras_token_file: Annotated[Path, typer.Option(help="File holding a RAS admin token.")],
    tks_url: Annotated[
        str, typer.Option(help="TKS base URL (the operator's and the pods'); replicas comma-separated.")
    ],
    tks_token_file: Annotated[Path, typer.Option(help="File holding a TKS admin token.")],
    bgs_url: Annotated[str, typer.Option(help="BGS base URL.")],
    baseline_signer_key: Annotated[
        list[Path], typer.Option(help="Public key (PEM) baselines must be signed by (repeatable).")
    ],
    baseline_log_key: Annotated[
        str, typer.Option(help="The BGS log's verifier key (<origin>+<id>+<key>), or a file holding it.")
    ],
    teeplane_image: Annotated[str, typer.Option(help="TEEPlane image for the agent and EPS, name@sha256:...")],
    ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle (PEM) to verify the services' TLS; the pods' agent gets it too.")
    ] = None,
    runtime_class: Annotated[
        list[str] | None, typer.Option(help="TEE=RUNTIMECLASS, e.g. tdx=kata-qemu-tdx (repeatable).")
    ] = None,
    namespace: Annotated[list[str] | None, typer.Option(help="Serve only these namespaces (default: all).")] = None,
    peering: Annotated[str, typer.Option(help="Kopf peering object shared by the operator's replicas.")] = (
        "teeplane-operator"
    ),
    standalone: Annotated[bool, typer.Option(help="Run without peering (a single replica).")] = False,
    priority: Annotated[
        int | None, typer.Option(help="Peering priority; the highest runs, others stand by (default: random).")
    ] = None,
    webhook_host: Annotated[str, typer.Option(help="Address the webhook listens on and the API server calls.")] = (
        "127.0.0.1"
    ),
    webhook_port: Annotated[int, typer.Option(help="Webhook HTTPS port.")] = 9443,
    webhook_tls_dir: Annotated[
        Path | None,
        typer.Option(help="tls.crt, tls.key and ca.crt the webhook serves (default: a CA generated for this run)."),
    ] = None,
    webhook_service: Annotated[
        str | None,
        typer.Option(
            help="NAMESPACE/NAME[:PORT] of a Service in front of every replica's webhook: the webhook configuration "
            "names it, not this replica, and keeps it when this replica stops. Needs --webhook-tls-dir."
        ),
    ] = None,
    webhooks: Annotated[bool, typer.Option(help="Serve and register the admission webhooks.")] = True,
    liveness: Annotated[
        str | None, typer.Option(help="Serve a liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz.")
    ] = None,
    unregister_attempts: Annotated[int, typer.Option(min=1, help="Tries to unregister at RAS on delete.")] = 5,
    unregister_delay: Annotated[float, typer.Option(min=0.1, help="Seconds between those tries.")] = 2.0,
    resync_interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between re-checks of each workload at RAS and TKS.")
    ] = 300.0,
) -> None:
    """Run the operator until interrupted (KUBECONFIG, or the in-cluster service account)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("aiohttp.access", "httpx"):  # a line per admission request, per call to RAS or TKS
        logging.getLogger(chatty).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="teeplane-webhook-") as work_dir:
        try:
            verify = trusting(ca_file)
            ca_bundle = read_file(ca_file, "CA file").decode() if ca_file is not None else None
            render_config = RenderConfig(teeplane_image, ras_url, tks_url, _placements(runtime_class or []), ca_bundle)
            services = Services(
                RasClient(ras_url, admin_token=_token(ras_token_file), verify=verify, timeout=SERVICE_TIMEOUT),
                TksClient(tks_url, admin_token=_token(tks_token_file), verify=verify, timeout=SERVICE_TIMEOUT),
                BgsBaselines(
                    bgs_url,
                    [_signer_key(path) for path in baseline_signer_key],
                    load_log_verifier(baseline_log_key),
                    verify=verify,
                    timeout=SERVICE_TIMEOUT,
                ),
            )
            service = WebhookService.parse(webhook_service) if webhook_service is not None else None
            server = (
                webhook_server(webhook_host, webhook_port, Path(work_dir), webhook_tls_dir, service)
                if webhooks
                else None
            )
        except (TeeplaneError, ValueError) as error:
            typer.echo(f"error {error}", err=True)
            raise typer.Exit(2) from None
        asyncio.run(
            _run(
                services, render_config, server, service is not None, namespace or [], peering, standalone,
                priority if priority is not None else 1 + secrets.randbelow(2**30),
                Unregistering(unregister_attempts, unregister_delay), liveness, resync_interval,
            )
        )  # fmt: skip


async def _run(
    services: Services,
    render_config: RenderConfig,
    server: kopf.WebhookServer | None,
    shared_webhooks: bool,
    namespaces: list[str],
    peering: str,
    standalone: bool,
    priority: int,
    unregistering: Unregistering,
    liveness: str | None,
    resync: float,
) -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    # A thread per workload in flight for the calls to RAS, TKS and the BGS (asyncio's default is cores + 4).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(CONCURRENCY, "services"))
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = CONCURRENCY
    async with client.ApiClient(configuration) as api:
        kube = Kube(api)
        reconciler = Reconciler(kube, services, render_config, post_event, CONCURRENCY)
        handled = HandledSpecs()
        registry = build_registry(
            reconciler, kube, services.tks, render_config, unregistering, server is not None, handled, resync,
            keep_webhooks=shared_webhooks,
        )  # fmt: skip
        kopf.on.login(registry=registry)(kopf.login_via_async_client)
        settings = kopf.OperatorSettings()
        configure(settings, server, handled)
        settings.peering.mandatory = not standalone
        await kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=standalone,
            peering_name=None if standalone else peering,  # a name makes Kopf wait for peering
            priority=priority,
            liveness_endpoint=liveness,
        )


def _placements(overrides: list[str]) -> dict[Tee, Placement]:
    placements = default_placements()
    for override in overrides:
        given, sep, name = override.partition("=")
        tee = next((t for t in TEES if t == given), None)
        if not sep or tee is None or not name:
            raise InputError(
                "input.unreadable", f"--runtime-class {override}: expected TEE=NAME with TEE one of {', '.join(TEES)}"
            )
        old = placements[tee]
        placements[tee] = Placement(name, old.node_label, old.node_value)
    return placements


def _signer_key(path: Path) -> Key:
    what = f"--baseline-signer-key {path}"
    return load_public_key(read_file(path, what), what)


def _token(path: Path) -> str:
    lines = [line.strip() for line in read_file(path, "admin token file").decode().splitlines() if line.strip()]
    if not lines:
        raise InputError("input.unreadable", f"{path} holds no token")
    return lines[0]
