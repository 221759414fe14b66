"""SIGKILL the TKS leader during streams of writes and releases, 20 times, on a 3-member etcd.

Each round: writes (key rotations) go to a follower, which forwards them to the leader;
releases go to the other replicas. The leader is killed; the test measures how long until a
new leader accepts a write, checks that releases at the surviving replicas never failed and that
every acknowledged write is in etcd, then restarts the killed replica for the next round. Halfway
through, in a round of its own, one of the three etcd members is SIGKILLed under the same streams
(nothing visible may change) and stays down for the remaining rounds.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from etcd_cluster import EtcdCluster, etcd_cluster
from processes import Service, run_teeplane, service
from ras_testing import reference_for
from service_files import ServiceFiles
from tks_cluster import ADMIN, ADMIN_TOKEN, Streams, kill_the_leader, leader_of, start_replicas

from teeplane.attestation.ras.client import RasClient
from teeplane.attestation.reference import AppraisalPolicy

ROUNDS = 20
FAILOVER_LIMIT = 3.0
POLICY = {"workloads": ["payments/ledger"], "baselines": ["baseline-example-1"], "allow_simulated": True}


def lose_an_etcd_member(etcd: EtcdCluster, replicas: list[Service], token: str) -> None:
    """SIGKILL one of the three etcd members under live streams: nothing visible may change
    (every release succeeds, writes keep being acknowledged). It stays down for later rounds."""
    leader = leader_of(replicas)
    followers = [r for r in replicas if r is not leader]
    with Streams(followers[0].url, [f.url for f in followers], token) as streams:
        time.sleep(0.3)
        killed_at = time.monotonic()
        etcd.kill(etcd.members[0])
        time.sleep(2.0)
    assert streams.release_failures == [], streams.release_failures[:3]
    assert streams.acknowledged_after(killed_at) is not None, "no write was acknowledged after losing an etcd member"
    time.sleep(1.0)  # let replicas whose leases lapsed register again before the next leader kill


def test_leader_sigkill_twenty_times(tmp_path: Path) -> None:
    files = ServiceFiles.write(tmp_path, ADMIN_TOKEN)
    with etcd_cluster(tmp_path, size=3) as etcd, ExitStack() as stack:
        eps = stack.enter_context(service("eps", files.eps_args(), tmp_path))
        ras = stack.enter_context(service("ras", files.ras_args(), tmp_path))
        admin = RasClient(ras, admin_token=ADMIN_TOKEN)
        admin.put_reference_values("payments", "ledger", reference_for(files.td))
        admin.put_policy("payments", "ledger", AppraisalPolicy(allow_simulated=True, token_lifetime_seconds=600))
        agent = run_teeplane("agent", "attest", "--ras", ras, "--eps", eps, "--namespace", "payments",
                             "--name", "ledger", "--json", cwd=tmp_path)  # fmt: skip
        assert agent.returncode == 0, agent.stderr
        token = json.loads(agent.stdout)["token"]

        replicas = start_replicas(files, etcd.endpoints, ras, 3, stack)
        leader = leader_of(replicas)
        created = httpx.post(leader.url + "/v1/keys", json={"id": "failover-key", "policy": POLICY}, headers=ADMIN)
        assert created.status_code == 201, created.text

        failovers: list[float] = []
        acknowledged: list[int] = []
        releases = 0
        for round_number in range(ROUNDS):
            if round_number == ROUNDS // 2:
                lose_an_etcd_member(etcd, replicas, token)
            failover = kill_the_leader(replicas, token)
            failovers.append(failover.seconds)
            assert failover.release_failures == [], failover.release_failures[:3]
            acknowledged += failover.acknowledged
            releases += failover.releases

        stored = httpx.get(replicas[0].url + "/v1/keys/failover-key", headers=ADMIN).json()
        versions = {v["version"] for v in stored["versions"]}
        assert set(acknowledged) <= versions, "an acknowledged write was lost"
        assert len(set(acknowledged)) == len(acknowledged), "a version was acknowledged twice"
        worst = max(failovers)
        print(f"\nTKS failover over {ROUNDS} leader SIGKILLs: worst {worst:.2f} s, median "
              f"{sorted(failovers)[ROUNDS // 2]:.2f} s; {len(acknowledged)} writes and {releases} releases, "
              f"no release failed")  # fmt: skip
        assert worst < FAILOVER_LIMIT, failovers
