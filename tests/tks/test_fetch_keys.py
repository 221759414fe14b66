"""`teeplane agent fetch-keys`, the init container's job, against real RAS, EPS, TKS and etcd processes."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from etcd_cluster import etcd_cluster
from processes import TEEPLANE, Service, run_teeplane, service
from ras_testing import reference_for
from service_files import ServiceFiles
from tks_cluster import ADMIN, ADMIN_TOKEN, LONE_REPLICA

from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy

SECRET = b"correct horse battery staple"


@dataclass(frozen=True)
class Stack:
    workdir: Path
    ras: str
    tks: str
    eps: Service

    def fetch(self, *args: str, name: str = "ledger") -> subprocess.CompletedProcess[str]:
        return run_teeplane("agent", "fetch-keys", "--ras", self.ras, "--tks", self.tks, "--eps", self.eps.url,
                            "--namespace", "payments", "--name", name, "--pod", "ledger-0", *args,
                            cwd=self.workdir)  # fmt: skip


def _create(tks: str, key_id: str, workloads: list[str], **fields: object) -> None:
    policy = {"workloads": workloads, "any_baseline": True, "allow_simulated": True}
    created = httpx.post(f"{tks}/v1/keys", json={"id": key_id, "policy": policy, **fields}, headers=ADMIN)
    assert created.status_code == 201, created.text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("fetch-keys")
    files = ServiceFiles.write(workdir, ADMIN_TOKEN)
    with etcd_cluster(workdir, size=1) as etcd, ExitStack() as running:
        ras = running.enter_context(service("ras", files.ras_args(), workdir))
        admin = RasClient(ras, admin_token=ADMIN_TOKEN)
        admin.put_reference_values("payments", "ledger", reference_for(files.td))
        admin.put_policy("payments", "ledger", AppraisalPolicy(allow_simulated=True))
        tks = running.enter_context(
            service("tks", files.tks_args(etcd.endpoints, ras, *LONE_REPLICA), workdir, "/readyz")
        )
        _create(tks, "ledger-data", ["payments/ledger"])
        _create(tks, "ledger-password", ["payments/ledger"], kind="secret",
                value=base64.urlsafe_b64encode(SECRET).decode().rstrip("="))  # fmt: skip
        _create(tks, "other-secret", ["payments/other"])
        eps = Service("eps", files.eps_args(), workdir)
        eps.start()
        running.callback(eps.stop)
        yield Stack(workdir, ras, tks, eps)


def test_every_key_is_written_where_the_workload_reads_it(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    done = stack.fetch("--out-dir", str(out), "--key", "ledger-data=data/key", "--key", "ledger-password=db/password",
                       "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["keys"] == {"ledger-data": str(out / "data/key"),
                                               "ledger-password": str(out / "db/password")}  # fmt: skip
    assert (out / "db/password").read_bytes() == SECRET
    assert len((out / "data/key").read_bytes()) == 32
    assert stat.S_IMODE((out / "db/password").stat().st_mode) == 0o440
    assert sorted(p.name for p in out.rglob("*")) == ["data", "db", "key", "password"]  # no partial files left

    again = stack.fetch("--out-dir", str(out), "--key", "ledger-data=data/key", "--file-mode", "400")
    assert again.returncode == 0, again.stderr
    assert stat.S_IMODE((out / "data/key").stat().st_mode) == 0o400


def test_a_key_for_another_workload_is_refused_and_nothing_is_written(stack: Stack, tmp_path: Path) -> None:
    out = tmp_path / "keys"
    refused = stack.fetch("--out-dir", str(out), "--key", "ledger-data=data/key", "--key", "other-secret=other")
    assert refused.returncode == 1
    assert "release.workload_not_allowed" in refused.stderr, refused.stderr
    assert not out.exists() or not any(out.rglob("*"))


def test_an_unknown_workload_is_refused_by_ras(stack: Stack, tmp_path: Path) -> None:
    refused = stack.fetch("--out-dir", str(tmp_path), "--key", "ledger-data=k", name="unregistered")
    assert refused.returncode == 1 and "policy.unknown_workload" in refused.stderr, refused.stderr
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("ledger-data=../escape", "relative"),
        ("ledger-data=/etc/passwd", "relative"),
        ("Ledger=x", "KEY_ID=PATH"),
        ("ledger-data", "KEY_ID=PATH"),
    ],
)
def test_bad_key_options_are_refused_before_anything_is_asked(stack: Stack, tmp_path: Path, key: str,
                                                              message: str) -> None:  # fmt: skip
    bad = stack.fetch("--out-dir", str(tmp_path / "keys"), "--key", key)
    assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "keys").exists()


def test_waits_for_the_eps_sidecar_to_start(stack: Stack, tmp_path: Path) -> None:
    """The init container may run before the EPS answers: unavailable services are retried."""
    out = tmp_path / "keys"
    stack.eps.stop()
    waiting = subprocess.Popen([*TEEPLANE, "agent", "fetch-keys", "--ras", stack.ras, "--tks", stack.tks,
                                "--eps", stack.eps.url, "--namespace", "payments", "--name", "ledger", "--out-dir",
                                str(out), "--key", "ledger-password=password", "--timeout", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert waiting.stderr is not None
    first = waiting.stderr.readline()  # it has tried the EPS and is waiting to try again
    stack.eps.start()
    _, rest = waiting.communicate(timeout=90)
    stderr = first + rest
    assert waiting.returncode == 0, stderr
    assert "retrying" in stderr
    assert (out / "password").read_bytes() == SECRET


def test_gives_up_after_the_timeout(stack: Stack, tmp_path: Path) -> None:
    gone = run_teeplane("agent", "fetch-keys", "--ras", stack.ras, "--tks", stack.tks, "--eps", "http://127.0.0.1:9",
                        "--namespace", "payments", "--name", "ledger", "--out-dir", str(tmp_path),
                        "--key", "ledger-data=k", "--timeout", "1", cwd=tmp_path)  # fmt: skip
    assert gone.returncode == 2 and "service.unreachable" in gone.stderr, gone.stderr
    assert not (tmp_path / "k").exists()
