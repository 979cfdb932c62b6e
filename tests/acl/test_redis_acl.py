"""deploy/redis-acl/users.acl on a real ACL-enabled redis-server: each user can do what it
needs (the real sidecar, the real Kamailio proxy, the guard's reader and lock) and nothing
more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from breaker.client import JobLock, LockState, VerdictReader
from testbed.kamailio import quoted
from testbed.procs import Child, free_port, port_open
from testbed.waiting import wait_until
from tests.kamailio.harness import PROXY_CFG, BreakerHash, Kamailio, Responder, proxy_defines
from tests.kamailio.sip import SipClient
from tests.support.sidecar import Sidecar

ACL = Path(__file__).resolve().parents[2] / "deploy" / "redis-acl" / "users.acl"
SECRETS = {"kamailio": "kam-0123456789abcdef", "sidecar": "side-0123456789", "guard": "g-0123"}
ADMIN = "adm-0123456789abcdef"
VERDICT = "breaker:{presence}"


class AclRedis:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        text = ACL.read_text()
        for user, secret in SECRETS.items():
            text = text.replace(f"CHANGE-ME-{user}", secret)
        assert "CHANGE-ME" not in text, "every placeholder must be replaced"
        self.aclfile = workdir / "users.acl"
        self.aclfile.write_text(text + f"user test-admin on >{ADMIN} ~* &* +@all\n")
        self.port = free_port()
        self.proc = Child(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--aclfile", str(self.aclfile)],
            workdir / "redis.log",
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), 10, what="ACL redis-server")

    def url(self, user: str | None, secret: str) -> str:
        return f"redis://{user or ''}:{secret}@127.0.0.1:{self.port}/0"

    def client(self, user: str | None, secret: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user, secret), decode_responses=True)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    server = AclRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.proc.stop()


def refused(call: object, what: str) -> None:
    assert callable(call)
    with pytest.raises((NoPermissionError, ResponseError)) as info:
        call()
    assert "NOPERM" in str(info.value) or "permission" in str(info.value).lower(), (
        f"expected NOPERM for {what}, got {info.value}"
    )


def test_anonymous_connections_can_do_nothing(acl_redis: AclRedis) -> None:
    anonymous = redis.Redis(port=acl_redis.port, decode_responses=True)
    with pytest.raises(redis.exceptions.RedisError) as info:
        anonymous.hgetall(VERDICT)
    assert "NOAUTH" in str(info.value) or "auth" in str(info.value).lower(), str(info.value)


def test_sidecar_user_runs_the_real_sidecar_and_may_touch_only_breaker_keys(
    tmp_path: Path, acl_redis: AclRedis
) -> None:
    admin = acl_redis.client("test-admin", ADMIN)
    admin.hset(f"{VERDICT}:passive", mapping={"forwarded": 5, "failed": 0})
    url = acl_redis.url("breaker-sidecar", SECRETS["sidecar"])
    (tmp_path / "sc").mkdir()
    sidecar = Sidecar(tmp_path / "sc", url, f"tcp://127.0.0.1:{free_port()}").start()
    try:
        wait_until(lambda: admin.hget(VERDICT, "state"), 10, what="the verdict in Redis")
        forced = sidecar.put(
            "/v1/breakers/presence/force", {"state": "open", "ttl": 60, "reason": "acl"}
        )
        assert forced.status_code == 200, forced.text
        wait_until(lambda: admin.xlen(f"{VERDICT}:log") > 0, 10, what="the audit stream")
        history = sidecar.get("/v1/breakers/presence/history").json()
        ready = sidecar.get("/readyz").status_code
        log = sidecar.proc.output() if sidecar.proc else ""
    finally:
        sidecar.stop()
    assert history["source"] == "redis" and ready == 200, f"{history['source']}, {ready}"
    assert "NOPERM" not in log and "permission" not in log.lower(), log[-2000:]
    side = acl_redis.client("breaker-sidecar", SECRETS["sidecar"])
    refused(lambda: side.set("other", "x"), "SET on a foreign key")
    refused(lambda: side.hset(f"{VERDICT}:passive", "forwarded", 0), "writing passive counters")
    refused(lambda: side.hset("breaker:{presence}:guard:job", "x", 1), "a guard lock key")
    refused(lambda: side.delete("other"), "DEL of a foreign key")
    refused(lambda: side.flushall(), "FLUSHALL")
    refused(lambda: side.config_get("*"), "CONFIG GET")
    refused(lambda: side.keys("*"), "KEYS")
    refused(lambda: side.publish("other-channel", "x"), "PUBLISH elsewhere")


def test_kamailio_as_default_user_reads_verdicts_and_writes_only_passive_counters(
    tmp_path: Path, acl_redis: AclRedis
) -> None:
    responder = Responder(tmp_path / "responder").start()
    port = free_port()
    server = f"name=breaker;addr=127.0.0.1;port={acl_redis.port};db=0;pass={SECRETS['kamailio']}"
    defines = proxy_defines(port, responder.port, acl_redis.port)
    defines["BREAKER_REDIS_SERVER"] = quoted(server)
    proxy = Kamailio(PROXY_CFG, tmp_path / "proxy", port, defines, name="proxy")
    hash_ = BreakerHash(acl_redis.port)
    hash_.client = acl_redis.client("test-admin", ADMIN)
    try:
        proxy.start()
        epoch = hash_.set("open", retry_after=5)
        proxy.wait_verdict(state="open", epoch=epoch, source="redis")
        epoch = hash_.set("closed")
        proxy.wait_verdict(state="closed", epoch=epoch, source="redis")
        with SipClient(proxy.address) as client:
            got = client.send_all([client.mwi_publish(f"mbox{i}") for i in range(10)])
        assert {r.code for r in got.values()} == {200}, "expected forwarding while closed"
        hash_.wait_passive("forwarded", 10)
    finally:
        proxy.stop()
        responder.stop()
    kam = acl_redis.client(None, SECRETS["kamailio"])
    assert kam.hmget(VERDICT, "state") == ["closed"]
    refused(lambda: kam.hset(VERDICT, "state", "closed"), "writing the verdict")
    refused(lambda: kam.delete(f"{VERDICT}:passive"), "DEL")
    refused(lambda: kam.eval("return redis.call('HSET', KEYS[1], 'state', 'x')", 1, VERDICT),
            "writing the verdict from a script")  # fmt: skip
    refused(lambda: kam.hgetall(VERDICT), "HGETALL (not needed)")
    refused(lambda: kam.set("other", "x"), "SET")
    refused(lambda: kam.xadd(f"{VERDICT}:log", {"x": "1"}), "the audit stream")
    refused(lambda: kam.publish("breaker:events", "x"), "PUBLISH")


async def test_guard_user_reads_verdicts_and_holds_its_lock_and_nothing_more(
    acl_redis: AclRedis,
) -> None:
    admin = acl_redis.client("test-admin", ADMIN)
    admin.hset(VERDICT, mapping={"state": "closed", "admit": 100, "epoch": 3, "contract": 1})
    client = aioredis.Redis.from_url(acl_redis.url("breaker-guard", SECRETS["guard"]))
    try:
        reading = await VerdictReader(client, "presence").read()
        lock = JobLock(client, "breaker:{presence}:guard:vm-presence", ttl=5)
        taken = await lock.acquire()
        renewed = await lock.renew()
        await lock.release()
        pubsub = client.pubsub()
        await pubsub.subscribe("breaker:events")
        await pubsub.aclose()
    finally:
        await client.aclose()
    assert reading.state is not None and reading.state.value == "closed", reading
    assert (taken, renewed) == (LockState.HELD, LockState.HELD), (taken, renewed)
    assert admin.exists("breaker:{presence}:guard:vm-presence") == 0, "released"
    guard = acl_redis.client("breaker-guard", SECRETS["guard"])
    assert guard.hincrby(f"{VERDICT}:guard", "refused_open", 1) >= 1, "the guard counts outcomes"
    side = acl_redis.client("breaker-sidecar", SECRETS["sidecar"])
    assert side.hgetall(f"{VERDICT}:guard"), "the sidecar reads the guard's outcome counts"
    refused(lambda: side.hincrby(f"{VERDICT}:guard", "ran", 1), "the sidecar counting runs")
    refused(lambda: guard.hset(VERDICT, "state", "open"), "writing the verdict")
    refused(lambda: guard.set("breaker:{presence}", "x"), "overwriting the verdict")
    refused(lambda: guard.set("elsewhere:lock", "x"), "a lock outside its pattern")
    refused(lambda: guard.publish("breaker:events", "x"), "PUBLISH")
    refused(lambda: guard.hset(f"{VERDICT}:passive", "failed", 1), "passive counters")
    await asyncio.sleep(0)
