"""Where everything of a development stack lives under its state directory."""

from __future__ import annotations

from pathlib import Path


class Layout:
    """The files and directories under one state directory (made absolute)."""

    def __init__(self, state_dir: Path) -> None:
        root = self.root = state_dir.expanduser().resolve()
        self.stack_file = root / "stack.json"
        self.ports_file = root / "ports.json"
        self.lock_file = root / ".lock"
        # Generated material (see materials.py).
        self.ca_file, self.ca_key = root / "tls" / "ca.pem", root / "tls" / "ca.key"
        self.server_cert, self.server_key = root / "tls" / "server.pem", root / "tls" / "server.key"
        self.admin_token_file = root / "admin-token"
        self.kek_file = root / "kek"
        self.sim_dir = root / "sim"
        self.sim_root = root / "sim-root.pem"
        self.sim_collateral = root / "sim-collateral.json"
        keys = root / "bgs-keys"
        self.bgs_signing_key, self.bgs_signer_public = keys / "signing.key", keys / "signing.pub"
        self.bgs_log_private, self.bgs_log_vkey = keys / "log.key", keys / "log.vkey"
        # Processes and their output.
        self.run_dir = root / "run"
        self.logs_dir = root / "logs"
        # hack/cluster.sh's state, and the admin kubeconfig it writes there.
        self.cluster_dir = root / "cluster"
        self.kubeconfig = self.cluster_dir / "kubeconfig"

    def data_dir(self, component: str) -> Path:
        """The persistent data of a component (etcd's database, RAS's state, BGS's log)."""
        return self.root / "data" / component

    def run_record(self, component: str) -> Path:
        """The record of a started process: pid, command line, URLs."""
        return self.run_dir / f"{component}.json"

    def log(self, component: str) -> Path:
        """The log of a component (stdout and stderr, appended at every start)."""
        return self.logs_dir / f"{component}.log"
