"""Redis Sentinel: SIGKILL the master under a real sidecar and a real Kamailio proxy.

One master, one replica, three sentinels (down-after-milliseconds 1000). The
sidecar uses `redis+sentinel://`, Kamailio ndb_redis's sentinel server spec
(BREAKER_REDIS_SENTINEL) with BREAKER_FAIL_MODE=last.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.store import RedisStore
from testbed.procs import free_port
from testbed.waiting import eventually, wait_until
from tests.kamailio.harness import PROXY_CFG, Kamailio, Responder, proxy_defines
from tests.support.redis_ha import SentinelSet, SwitchWatch, sentinel_set
from tests.support.sidecar import Sidecar
from tests.support.tls import self_signed

KEY = "breaker:{presence}"
PUBLISH_WITHIN = 5.0  # promotion -> first write on the new master (issue 8)


@dataclass
class Watch:
    """Samples /readyz and the new master's `updated` field from a thread, every 20 ms.

    The first write on the new master is the first `updated` stamped after the kill:
    anything older was replicated from the old master.
    """

    sidecar: Sidecar
    new_master: redis.Redis
    killed_wall: float = float("inf")
    readyz: list[tuple[float, int]] = field(default_factory=list)
    first_write: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=0.5) as http:
            while not self.stop.is_set():
                now = time.monotonic()
                try:
                    self.readyz.append((now, http.get(f"{self.sidecar.url}/readyz").status_code))
                except httpx.HTTPError:
                    self.readyz.append((now, 0))
                if self.first_write is None:
                    try:
                        updated = self.new_master.hget(KEY, "updated")
                    except redis.RedisError:
                        updated = None
                    if updated is not None and float(updated) > self.killed_wall:
                        self.first_write = time.monotonic()
                self.stop.wait(0.02)


@pytest.fixture
def chain(
    tmp_path: Path, sentinel: SentinelSet, responder: Responder
) -> Iterator[tuple[Sidecar, Kamailio]]:
    (tmp_path / "sidecar").mkdir()
    sidecar = Sidecar(
        tmp_path / "sidecar", sentinel.url, f"sip:127.0.0.1:{responder.port};transport=udp"
    )
    port = free_port()
    # One sentinel only: Kamailio 5.6.3's ndb_redis connects to a sentinel when given several.
    spec = f"127.0.0.1:{sentinel.sentinel_ports[0]}"
    defines = proxy_defines(
        port,
        responder.port,
        0,  # BREAKER_REDIS_SERVER is not used when BREAKER_REDIS_SENTINEL is defined
        BREAKER_REDIS_SENTINEL=f'"{spec}"',
        BREAKER_REDIS_MASTER='"breaker"',
        BREAKER_FAIL_MODE='"last"',
    )
    proxy = Kamailio(PROXY_CFG, tmp_path / "proxy", port, defines, name="proxy")
    try:
        sidecar.start()
        proxy.start()
        yield sidecar, proxy
    finally:
        proxy.stop()
        sidecar.stop()


def test_master_sigkill_sidecar_and_kamailio_follow_the_new_master(
    chain: tuple[Sidecar, Kamailio], sentinel: SentinelSet
) -> None:
    sidecar, proxy = chain
    old_port, new_port = sentinel.data_ports
    old, new = sentinel.client(old_port), sentinel.client(new_port)
    wait_until(lambda: sidecar.get("/readyz").status_code == 200, 10, what="sidecar ready")
    forced = sidecar.put(
        "/v1/breakers/presence/force", {"state": "open", "ttl": 300, "reason": "failover drill"}
    )
    assert forced.status_code == 200, forced.text
    proxy.wait_verdict(timeout=10, state="open", source="redis")
    # Replication is asynchronous: make sure the replica has the force before the kill.
    wait_until(lambda: new.hget(KEY, "forced") == "open", 5, what="force on the replica")
    assert old.wait(1, 2000) == 1, "expected the replica to acknowledge the writes"

    watch = Watch(sidecar, new)
    switch = SwitchWatch(sentinel.sentinel_client())
    switch.start()
    sampler = threading.Thread(target=watch.run, daemon=True)
    sampler.start()
    watch.killed_wall = time.time()
    sentinel.kill(old_port)
    killed_at = time.monotonic()
    switched_at, promoted = switch.result(30)
    assert promoted == new_port, f"expected the replica {new_port} promoted, got {promoted}"
    wait_until(lambda: watch.first_write is not None, 15, what="first write on the new master")
    wait_until(lambda: watch.readyz[-1][1] == 200, 5, what="/readyz 200 after the failover")
    watch.stop.set()
    sampler.join(5)
    assert watch.first_write is not None
    lag = watch.first_write - switched_at
    print(
        f"failover: kill->switch {switched_at - killed_at:.2f}s, "
        f"switch->first write {lag:.2f}s, kill->first write {watch.first_write - killed_at:.2f}s"
    )
    assert lag <= PUBLISH_WITHIN, f"first write {lag:.2f}s after the promotion, want <= 5 s"

    gap = [code for t, code in watch.readyz if killed_at < t < watch.first_write]
    assert 503 in gap, f"expected /readyz 503 while there was no master, saw {set(gap)}"

    state = new.hgetall(KEY)
    assert (state.get("forced"), state.get("state")) == ("open", "open"), (
        f"expected the force to survive on the new master, got {state}"
    )
    # Kamailio keeps its verdict through the gap (fail mode last), then reads the new master ...
    proxy.wait_verdict(timeout=10, state="open", source="redis")
    print(f"failover: kill->kamailio reads the new master {time.monotonic() - killed_at:.2f}s")
    held = [v for v in proxy.verdicts() if v.matches(source="fallback")]
    assert held, "expected Kamailio to see the gap (a fallback verdict line)"
    assert all(v["state"] == "open" for v in held), f"fail mode last must hold open: {held}"
    # ... and it is the new master it reads: a release written there reaches it.
    released = sidecar.delete("/v1/breakers/presence/force")
    assert released.status_code == 200, released.text
    proxy.wait_verdict(timeout=10, state="closed", source="redis")
    assert sidecar.proc is not None
    assert "Traceback" not in sidecar.proc.output(), sidecar.proc.output()[-3000:]


async def test_sidecar_reaches_the_master_through_tls_sentinels_with_passwords(
    tmp_path: Path, responder: Responder
) -> None:
    cert, key = self_signed(tmp_path)
    secret = tmp_path / "sentinel-password"
    secret.write_text("sentinel-pw\n")
    with sentinel_set(
        tmp_path / "tls", tls=(cert, key), password="master-pw", sentinel_password="sentinel-pw"
    ) as ha:
        # Without the sentinels' password the master cannot even be found.
        store = RedisStore(RedisConfig(url=ha.url, ssl_ca_file=cert))
        try:
            with pytest.raises(StoreUnavailable):
                await store.ping()
        finally:
            await store.aclose()
        (tmp_path / "sidecar").mkdir()
        sidecar = Sidecar(
            tmp_path / "sidecar",
            ha.url,
            f"sip:127.0.0.1:{responder.port};transport=udp",
            redis={"ssl_ca_file": str(cert), "sentinel_password_file": str(secret)},
        )
        try:
            await asyncio.to_thread(sidecar.start)
            master = ha.client(ha.data_ports[0])
            await eventually(lambda: master.hget(KEY, "state") == "closed", 10, "verdict on master")
            assert sidecar.get("/readyz").status_code == 200
        finally:
            sidecar.stop()
        log = (sidecar.workdir / "sidecar.log").read_text()
        assert "master-pw" not in log and "sentinel-pw" not in log, "a password in the log"
