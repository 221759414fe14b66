"""The files a simulated deployment's services read, and their command lines: a simulation root
and its collateral (RAS), an admin token file (RAS, TKS) and a development KEK (TKS)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from teeplane.attestation.sim.collateral import bundle_json
from teeplane.attestation.sim.example import boot_example_td
from teeplane.attestation.sim.pki import SimulationAuthority, pem
from teeplane.attestation.sim.td import SimulatedTd


@dataclass(frozen=True)
class ServiceFiles:
    """Files under `directory`, written once; `ras_args` and `tks_args` are the commands that read them."""

    directory: Path
    authority: SimulationAuthority
    admin_token: str

    @classmethod
    def write(cls, directory: Path, admin_token: str) -> ServiceFiles:
        """A fresh simulation authority (valid from an hour ago), its collateral, tokens and a KEK."""
        now = datetime.now(UTC)
        files = cls(directory, SimulationAuthority.generate(now - timedelta(hours=1)), admin_token)
        files.authority.save(directory / "sim")
        (directory / "root.pem").write_bytes(pem(files.authority.root_cert))
        (directory / "collateral.json").write_bytes(bundle_json(files.authority, now - timedelta(minutes=5)))
        (directory / "admin-tokens").write_text(admin_token + "\n")
        (directory / "kek").write_bytes(secrets.token_bytes(32))
        return files

    @property
    def td(self) -> SimulatedTd:
        """A TD booted from the example artifacts under this authority."""
        return boot_example_td(self.authority)

    def ras_args(self, *extra: str) -> list[str]:
        """`teeplane ras serve` trusting the simulation root, with its collateral."""
        d = self.directory
        return ["ras", "serve", "--state", str(d / "ras"), "--admin-token-file", str(d / "admin-tokens"),
                "--simulation-root", str(d / "root.pem"), "--simulation-collateral", str(d / "collateral.json"),
                *extra]  # fmt: skip

    def eps_args(self) -> list[str]:
        """`teeplane eps serve` as the simulated TD."""
        return ["eps", "serve", "--provider", "simulated", "--sim-state", str(self.directory / "sim")]

    def tks_args(self, etcd_endpoints: list[str], ras_url: str, *extra: str) -> list[str]:
        """`teeplane tks serve` on these etcd members, trusting RAS at `ras_url`."""
        d = self.directory
        return ["tks", "serve", "--etcd", ",".join(etcd_endpoints), "--ras-url", ras_url,
                "--admin-token-file", str(d / "admin-tokens"), "--kek-file", str(d / "kek"), *extra]  # fmt: skip
