"""`teeplane keys` against a real TKS replica on a real etcd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from etcd_cluster import etcd_cluster
from processes import run_teeplane, service
from service_files import ServiceFiles
from tks_cluster import LONE_REPLICA

ADMIN = "keys-cli-admin-token"
SECRET = b"the ledger's database password"


@pytest.fixture(scope="module")
def tks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("keys-cli")
    files = ServiceFiles.write(tmp, ADMIN)
    with etcd_cluster(tmp, 1) as etcd:
        # No RAS: the admin API never needs it (its JWKS is fetched on the first release).
        args = files.tks_args(etcd.endpoints, "http://127.0.0.1:9", *LONE_REPLICA)
        with service("tks", args, tmp, "/readyz") as url:
            yield url, tmp


def keys(tks: tuple[str, Path], *args: str, token: str = ADMIN) -> CompletedProcess[str]:
    url, tmp = tks
    return run_teeplane("keys", "--url", url, "--token", token, *args, cwd=tmp)


def test_a_key_lifecycle(tks: tuple[str, Path]) -> None:
    created = keys(tks, "create", "ledger-key", "--workload", "payments/ledger", "--baseline", "b-1", "--json")
    assert created.returncode == 0, created.stderr
    meta = json.loads(created.stdout)
    assert (meta["id"], meta["kind"], [v["version"] for v in meta["versions"]]) == ("ledger-key", "aes-256", [1])
    assert meta["policy"]["workloads"] == ["payments/ledger"] and meta["policy"]["allow_simulated"] is False

    secret_file = tks[1] / "secret"
    secret_file.write_bytes(SECRET)
    policy_file = tks[1] / "policy.json"
    policy_file.write_text(json.dumps({"workloads": ["payments/api"], "any_baseline": True}))
    stored = keys(tks, "create", "api-secret", "--secret-file", str(secret_file), "--policy", str(policy_file),
                  "--allow-simulated")  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    assert "api-secret" in stored.stdout and SECRET.decode() not in stored.stdout

    listed = keys(tks, "list", "--json")
    assert {"ledger-key", "api-secret"} <= set(json.loads(listed.stdout)["keys"])
    shown = json.loads(keys(tks, "show", "api-secret", "--json").stdout)
    assert shown["kind"] == "secret"
    assert (shown["policy"]["allow_simulated"], shown["policy"]["any_baseline"]) == (True, True)

    rotated = json.loads(keys(tks, "rotate", "ledger-key", "--json").stdout)
    assert [v["version"] for v in rotated["versions"]] == [1, 2]
    replaced = keys(tks, "policy", "ledger-key", "--workload", "payments/ledger", "--baseline", "b-2",
                    "--require-latest", "--json")  # fmt: skip
    assert json.loads(replaced.stdout)["policy"]["baselines"] == ["b-2"]
    current = json.loads(keys(tks, "policy", "ledger-key", "--json").stdout)
    assert current["policy"]["require_latest_version"] is True

    deleted = keys(tks, "delete", "ledger-key")
    assert deleted.returncode == 0 and "deleted ledger-key" in deleted.stdout
    gone = keys(tks, "show", "ledger-key", "--json")
    assert gone.returncode == 2 and json.loads(gone.stdout)["errors"][0]["code"] == "tks.key_not_found"


def test_bad_input_and_bad_credentials_lose_nothing(tks: tuple[str, Path]) -> None:
    no_policy = keys(tks, "create", "orphan", "--json")
    assert no_policy.returncode == 2
    assert json.loads(no_policy.stdout)["errors"][0]["code"] == "keys.policy_invalid"
    bad_id = keys(tks, "create", "Not A Key", "--workload", "a/b", "--any-baseline")
    assert bad_id.returncode == 2 and "keys.key_invalid" in bad_id.stderr
    wrong_token = keys(tks, "create", "orphan", "--workload", "a/b", "--any-baseline", token="not-the-token")
    assert wrong_token.returncode == 1 and "admin" in wrong_token.stderr
    assert "orphan" not in json.loads(keys(tks, "list", "--json").stdout)["keys"]
    unreachable = run_teeplane("keys", "--url", "http://127.0.0.1:9", "--token", ADMIN, "list", cwd=tks[1])
    assert unreachable.returncode == 2 and "service.unreachable" in unreachable.stderr
