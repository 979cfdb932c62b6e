"""Redis Cluster: three masters (no replicas) created by the test with redis-cli --cluster create.

The sidecar and `breaker guard` use `redis+cluster://`; the Kamailio proxy uses
ndb_redis's cluster mode (BREAKER_REDIS_CLUSTER) pointed at a node that does NOT
hold the breaker's slot, so every read and write follows a MOVED reply.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from breaker._config import RedisConfig
from breaker.client import EventFeed, redis_client
from breaker.core import Policy, State
from breaker.guard import ExitCode
from breaker.store import RedisStore, VoteItem, state_key
from testbed.procs import free_port
from testbed.waiting import wait_until
from tests.kamailio.harness import PROXY_CFG, Kamailio, Responder, proxy_defines
from tests.kamailio.sip import SipClient
from tests.support.redis_ha import ClusterSet
from tests.support.sidecar import Sidecar

KEY = "breaker:{presence}"


@pytest.fixture
def sidecar(tmp_path: Path, cluster: ClusterSet, responder: Responder) -> Iterator[Sidecar]:
    (tmp_path / "sidecar").mkdir()
    running = Sidecar(
        tmp_path / "sidecar", cluster.url, f"sip:127.0.0.1:{responder.port};transport=udp"
    )
    try:
        running.start()
        wait_until(lambda: running.get("/readyz").status_code == 200, 10, what="sidecar ready")
        yield running
    finally:
        running.stop()


def _force(sidecar: Sidecar, state: str) -> None:
    forced = sidecar.put(
        "/v1/breakers/presence/force", {"state": state, "ttl": 300, "reason": "cluster drill"}
    )
    assert forced.status_code == 200, forced.text


def test_cluster_carries_verdict_forces_history_and_kamailio_reads_through_moved(
    tmp_path: Path, cluster: ClusterSet, sidecar: Sidecar, responder: Responder
) -> None:
    owner = cluster.port_for(KEY)
    elsewhere = next(p for p in cluster.ports if p != owner)
    port = free_port()
    defines = proxy_defines(port, responder.port, elsewhere, BREAKER_REDIS_CLUSTER=1)
    proxy = Kamailio(PROXY_CFG, tmp_path / "proxy", port, defines, name="proxy")
    node = cluster.client()
    try:
        proxy.start()
        proxy.wait_verdict(timeout=10, state="closed", source="redis")
        # Kamailio's passive counters (EVAL on breaker:{presence}:passive) follow MOVED too.
        with SipClient(proxy.address) as client:
            assert client.transact(client.mwi_publish("mbox1")).code == 200
        wait_until(
            lambda: node.hget(f"{KEY}:passive", "forwarded") is not None,
            5,
            what="passive counters written by Kamailio on the cluster",
        )

        _force(sidecar, "open")
        proxy.wait_verdict(timeout=10, state="open", source="redis")
        assert node.hget(KEY, "forced") == "open", node.hgetall(KEY)
        released = sidecar.delete("/v1/breakers/presence/force")
        assert released.status_code == 200, released.text
        proxy.wait_verdict(timeout=10, state="closed", source="redis")
    finally:
        proxy.stop()
    events = sidecar.get("/v1/breakers/presence/history").json()["events"]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["release", "force"], f"expected release then force (newest first): {kinds}"
    assert node.xlen(f"{KEY}:log") == len(events), "the audit stream holds every event"
    assert sidecar.proc is not None
    assert "Traceback" not in sidecar.proc.output(), sidecar.proc.output()[-3000:]


async def _force_seen_on_events(cluster: ClusterSet, sidecar: Sidecar) -> float:
    """Force open while subscribed to breaker:events on the cluster; the time of the force."""
    client = redis_client(cluster.url)
    seen = asyncio.Event()
    calls: list[float] = []

    def on_event() -> None:
        calls.append(time.monotonic())
        if len(calls) > 1:  # the first call comes with the subscription itself
            seen.set()

    feed = EventFeed(client, "presence", on_event)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.ready.wait(), 5)
        assert feed.subscribed, "expected a pub/sub subscription on the cluster"
        await asyncio.to_thread(_force, sidecar, "open")
        forced_at = time.monotonic()
        try:
            await asyncio.wait_for(seen.wait(), 3)
        except TimeoutError:
            raise AssertionError("no message on breaker:events within 3 s of the force") from None
        return forced_at
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=2)
        await client.aclose()


def _guard(cluster: ClusterSet, workdir: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "breaker", "guard", "presence", "--redis-url", cluster.url,
         "--poll", "1s", "--grace", "2s", "--", "sleep", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir,
        start_new_session=True,
    )  # fmt: skip


def test_cluster_guard_lock_is_single_instance_and_events_stop_the_job(
    tmp_path: Path, cluster: ClusterSet, sidecar: Sidecar
) -> None:
    node = cluster.client()
    lock = f"{KEY}:guard:sleep"
    first = _guard(cluster, tmp_path, "first")
    try:
        wait_until(lambda: node.exists(lock) == 1, 10, what=f"lock {lock} taken")
        second = _guard(cluster, tmp_path, "second")
        out, _ = second.communicate(timeout=15)
        assert second.returncode == ExitCode.LOCKED, f"second guard: {second.returncode} {out}"
        forced_at = asyncio.run(_force_seen_on_events(cluster, sidecar))
        out, _ = first.communicate(timeout=15)
        stopped_after = time.monotonic() - forced_at
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(5)
    assert first.returncode == ExitCode.STOPPED_OPEN, f"first guard: {first.returncode} {out}"
    assert stopped_after < 5, f"guard stopped {stopped_after:.1f}s after the force, want < 5 s"
    assert node.exists(lock) == 0, "the stopped guard releases its lock"


async def test_cluster_runs_the_vote_script_on_every_node_and_reloads_flushed_scripts(
    cluster: ClusterSet,
) -> None:
    names = [f"f{i}" for i in range(12)]
    owners = {cluster.port_for(state_key("breaker:", n)) for n in names}
    assert len(owners) == 3, f"expected the breakers spread over 3 nodes, got {owners}"
    store = RedisStore(RedisConfig(url=cluster.url))
    policy = Policy(fall=1, rise=1, interval=0.1, slow_start=0.5)

    def vote(name: str, observer: str, state: State) -> VoteItem:
        return VoteItem(
            name=name, observer=observer, vote=state, reason="timeout",
            settings="interval=0.1", policy=policy, quorum="majority", vote_ttl=5.0, ttl=5.0,
            instance=f"i-{observer}",
        )  # fmt: skip

    try:
        outcomes, _ = await store.vote([vote(n, "a", State.OPEN) for n in names])
        assert all(o.error is None for o in outcomes), outcomes
        for port in cluster.ports:  # a node restart or SCRIPT FLUSH forgets the scripts
            cluster.node(port).script_flush()
        failed, _ = await store.vote([vote(n, "b", State.OPEN) for n in names])
        assert {o.error for o in failed} == {"script"}, f"expected NOSCRIPT failures: {failed}"
        outcomes, _ = await store.vote([vote(n, "b", State.OPEN) for n in names])
        assert all(o.error is None for o in outcomes), f"expected the scripts reloaded: {outcomes}"
        states = {o.verdict.state for o in outcomes if o.verdict is not None}
        assert states == {State.OPEN}, f"two open votes of two must open every breaker: {outcomes}"
        assert [(await store.read_state(n)).get("state") for n in names] == ["open"] * len(names)
    finally:
        await store.aclose()
