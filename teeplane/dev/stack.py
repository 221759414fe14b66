"""The development stack as a whole: `up`, `down` and `status` over one state directory, and the
`Stack` that `up` writes to STATE/stack.json for whatever runs on top (the demo, the user)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from teeplane.dev import kube as kubernetes
from teeplane.dev import materials, supervisor
from teeplane.dev.components import PORT_OWNERS, TIERS, TKS_REPLICAS, Component, operator, services
from teeplane.dev.errors import NOT_UP, STATE_CORRUPT, DevError
from teeplane.dev.hack import cluster, cluster_running, etcd_binary, hack_dir
from teeplane.dev.layout import Layout
from teeplane.dev.ports import choose, load, save
from teeplane.io import read_file
from teeplane.tls import trusting

STATE_ENV = "TEEPLANE_DEV_STATE"


@dataclass(frozen=True)
class Stack:
    """What `teeplane dev up` runs, as written to STATE/stack.json (paths absolute)."""

    state_dir: Path
    ca_file: Path  # CA every service's TLS certificate chains to
    admin_token_file: Path  # one admin bearer token (raw) accepted by RAS, TKS and BGS
    etcd_endpoints: list[str]  # http, loopback
    ras_url: str
    tks_urls: list[str]  # three replicas
    bgs_url: str
    sim_dir: Path  # SimulationAuthority.save() directory (what `eps serve --sim-state` reads)
    sim_root: Path  # simulation root CA PEM (what RAS trusts with --simulation-root)
    sim_collateral: Path  # collateral bundle JSON for the simulated platform
    bgs_signer_key: Path  # PUBLIC key (PEM) of the BGS baseline signing key
    bgs_log_key: Path  # the log's checkpoint verifier key (what `teeplane baseline verify --log-key` takes)
    kubeconfig: Path | None  # admin kubeconfig of the local cluster, None when not started
    logs_dir: Path

    @classmethod
    def load(cls, state_dir: Path) -> Stack:
        """The stack `up` wrote under `state_dir`; DevError (dev.not_up) when it is not up."""
        path = Layout(state_dir).stack_file
        if not path.is_file():
            raise DevError(NOT_UP, f"no development stack is up under {state_dir}: run `teeplane dev up`")
        try:
            return _STACK.validate_json(path.read_bytes())
        except ValidationError as error:
            raise DevError(STATE_CORRUPT, f"{path} is not a stack description: {error.errors()[0]['msg']}") from None

    def admin_token(self) -> str:
        """The admin bearer token RAS, TKS and BGS accept."""
        return read_file(self.admin_token_file, "admin token file").decode().strip()

    def to_json(self) -> bytes:
        """The stack as JSON (what stack.json holds)."""
        return _STACK.dump_json(self, indent=2)


_STACK: TypeAdapter[Stack] = TypeAdapter(Stack)


@dataclass(frozen=True)
class ComponentStatus:
    """One component as `status` finds it."""

    name: str
    pid: int | None
    url: str | None
    running: bool
    healthy: bool


def default_state_dir() -> Path:
    """$TEEPLANE_DEV_STATE, or ${XDG_STATE_HOME:-~/.local/state}/teeplane/dev."""
    named = os.environ.get(STATE_ENV)
    if named:
        return Path(named)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "teeplane" / "dev"


def up(state_dir: Path, *, kube: bool | None = None, progress: Callable[[str], None] | None = None) -> Stack:
    """Start whatever of the stack is not running under `state_dir` (creating its material on first use),
    health-check all of it and write STATE/stack.json. `kube`: None starts Kubernetes and the operator
    when hack/cluster.sh, its cached builds and kubectl are there; True requires them; False skips them."""
    say = progress or (lambda _: None)
    layout = Layout(state_dir)
    hack = hack_dir()
    with _locked(layout):
        with_kube = kubernetes.wanted(kube, hack)
        say("etcd binary (hack/etcd.sh; built on first use)")
        etcd = etcd_binary(hack)
        materials.ensure(layout)
        live = {name for name in set(PORT_OWNERS.values()) if supervisor.running(layout, name)}
        ports = choose(load(layout.ports_file), PORT_OWNERS, live)
        save(layout.ports_file, ports)
        wanted = {component.name: component for component in services(layout, ports, etcd)}
        kubeconfig = None
        for tier in TIERS:
            if "operator" in tier:
                if not with_kube:
                    continue
                kubeconfig = kubernetes.start(hack, layout, say)
                wanted["operator"] = operator(layout, ports, kubernetes.digest(kubeconfig))
            _bring_up(layout, [wanted[name] for name in tier], say)
        stack = Stack(
            state_dir=layout.root, ca_file=layout.ca_file, admin_token_file=layout.admin_token_file,
            etcd_endpoints=[wanted["etcd"].url], ras_url=wanted["ras"].url,
            tks_urls=[wanted[name].url for name in TKS_REPLICAS], bgs_url=wanted["bgs"].url,
            sim_dir=layout.sim_dir, sim_root=layout.sim_root, sim_collateral=layout.sim_collateral,
            bgs_signer_key=layout.bgs_signer_public, bgs_log_key=layout.bgs_log_vkey,
            kubeconfig=kubeconfig, logs_dir=layout.logs_dir,
        )  # fmt: skip
        materials.write(layout.stack_file, stack.to_json())
    return stack


def _bring_up(layout: Layout, components: list[Component], say: Callable[[str], None]) -> None:
    """Keep what runs as asked, (re)start the rest, then wait until all of them are healthy."""
    records = []
    for component in components:
        current = supervisor.running(layout, component.name)
        if current is not None and current.matches(component):
            records.append(current)
            continue
        if current is not None:
            say(f"restarting {component.name}: its configuration changed")
            supervisor.stop(layout, [component.name])
        say(f"starting {component.name}")
        records.append(supervisor.start(layout, component))
    supervisor.wait_ready(layout, records, say)


def down(state_dir: Path, *, purge: bool = False) -> None:
    """Stop every process of the stack (the cluster too); keep the state unless `purge`."""
    layout = Layout(state_dir)
    if not layout.root.is_dir():
        return
    with _locked(layout):
        for tier in reversed(TIERS):
            supervisor.stop(layout, tier)
        if layout.cluster_dir.is_dir():
            cluster(hack_dir(), "down", layout.cluster_dir)
        layout.stack_file.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(layout.root)


def status(state_dir: Path) -> list[ComponentStatus]:
    """Each component ever started under `state_dir`: pid, URL, whether it runs and answers its health check."""
    layout = Layout(state_dir)
    found = []
    for name in (name for tier in TIERS for name in tier):
        record = supervisor.record(layout, name)
        if record is None:
            if name != "operator" and layout.ports_file.is_file():
                found.append(ComponentStatus(name, None, None, running=False, healthy=False))
            continue
        runs = supervisor.running(layout, name) is not None
        healthy = runs and supervisor.healthy(record.health_url, trusting(layout.ca_file))
        found.append(ComponentStatus(name, record.pid if runs else None, record.url, runs, healthy))
    if layout.cluster_dir.is_dir():
        found.append(_kubernetes(layout))
    return found


def _kubernetes(layout: Layout) -> ComponentStatus:
    try:
        runs = cluster_running(hack_dir(), layout.cluster_dir)
        server = yaml.safe_load(layout.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    except (DevError, OSError, yaml.YAMLError, LookupError, TypeError):
        return ComponentStatus("kubernetes", None, None, running=False, healthy=False)
    return ComponentStatus("kubernetes", None, str(server), running=runs, healthy=runs)


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per state directory."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
