"""Where everything of a development stack lives under its state directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The files and directories under one state directory (an absolute path)."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path) -> Layout:
        """The layout of `state_dir`, made absolute."""
        return cls(state_dir.expanduser().resolve())

    def _path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def stack_file(self) -> Path:
        return self._path("stack.json")

    @property
    def ports_file(self) -> Path:
        return self._path("ports.json")

    @property
    def lock_file(self) -> Path:
        return self._path(".lock")

    @property
    def tls_dir(self) -> Path:
        return self._path("tls")

    @property
    def ca_file(self) -> Path:
        return self._path("tls", "ca.pem")

    @property
    def ca_key(self) -> Path:
        return self._path("tls", "ca.key")

    @property
    def server_cert(self) -> Path:
        return self._path("tls", "server.pem")

    @property
    def server_key(self) -> Path:
        return self._path("tls", "server.key")

    @property
    def admin_token_file(self) -> Path:
        return self._path("admin-token")

    @property
    def kek_file(self) -> Path:
        return self._path("kek")

    @property
    def sim_dir(self) -> Path:
        return self._path("sim")

    @property
    def sim_root(self) -> Path:
        return self._path("sim-root.pem")

    @property
    def sim_collateral(self) -> Path:
        return self._path("sim-collateral.json")

    @property
    def bgs_keys_dir(self) -> Path:
        return self._path("bgs-keys")

    @property
    def bgs_signing_key(self) -> Path:
        return self._path("bgs-keys", "signing.key")

    @property
    def bgs_signer_public(self) -> Path:
        return self._path("bgs-keys", "signing.pub")

    @property
    def bgs_log_private(self) -> Path:
        return self._path("bgs-keys", "log.key")

    @property
    def bgs_log_vkey(self) -> Path:
        return self._path("bgs-keys", "log.vkey")

    def data_dir(self, component: str) -> Path:
        """The persistent data of a component (etcd's database, RAS's state, BGS's log)."""
        return self._path("data", component)

    @property
    def run_dir(self) -> Path:
        return self._path("run")

    def run_record(self, component: str) -> Path:
        """The record of a started process: pid, command line, URLs."""
        return self._path("run", f"{component}.json")

    @property
    def logs_dir(self) -> Path:
        return self._path("logs")

    def log(self, component: str) -> Path:
        return self._path("logs", f"{component}.log")

    @property
    def cluster_dir(self) -> Path:
        return self._path("cluster")

    @property
    def kubeconfig(self) -> Path:
        """Where hack/cluster.sh writes the admin kubeconfig."""
        return self._path("cluster", "kubeconfig")
