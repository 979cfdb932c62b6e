"""Pool mode without a usable verdict: BREAKER_FAIL_MODE applies per member, then to all.

Three counting stand-ins as members, the verdict hashes written by hand (no sidecar).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from testbed.redis import Redis
from tests.kamailio.conftest import StartProxy
from tests.kamailio.harness import BreakerHash, Kamailio, Responder, quoted
from tests.kamailio.sip import SipClient
from tests.kamailio.test_pool import wait_member

MEMBERS = ("presence-a", "presence-b", "presence-c")


@pytest.fixture
def members(tmp_path: Path) -> Iterator[dict[str, Responder]]:
    started: dict[str, Responder] = {}
    try:
        for name in MEMBERS:
            started[name] = Responder(tmp_path / name).start()
        yield started
    finally:
        for responder in started.values():
            responder.stop()


def pool_proxy(
    start_proxy: StartProxy, tmp_path: Path, members: dict[str, Responder], fail_mode: str
) -> Kamailio:
    dslist = tmp_path / "dispatcher.list"
    dslist.write_text(
        "".join(f"1 sip:127.0.0.1:{r.port} 0 0 breaker={n}\n" for n, r in members.items())
    )
    return start_proxy(
        1,
        WITH_PRESENCE_POOL=True,
        PRESENCE_DSLIST=quoted(str(dslist)),
        BREAKER_FAIL_MODE=quoted(fail_mode),
    )


def hashes_for(redis_server: Redis, **states: str) -> dict[str, BreakerHash]:
    """Every member's verdict hash, closed unless `states` says otherwise (name with _ for -)."""
    hashes = {n: BreakerHash(redis_server.port, name=n) for n in MEMBERS}
    for name, h in hashes.items():
        h.set(states.get(name.replace("-", "_"), "closed"), retry_after=20)
    return hashes


ReadyPool = Callable[[str], tuple[Kamailio, dict[str, BreakerHash]]]


@pytest.fixture
def ready_pool(
    start_proxy: StartProxy,
    tmp_path: Path,
    members: dict[str, Responder],
    redis_server: Redis,
) -> ReadyPool:
    """ready_pool(fail_mode): every member closed in Redis, the proxy started and reading
    all of them."""

    def ready(fail_mode: str) -> tuple[Kamailio, dict[str, BreakerHash]]:
        hashes = hashes_for(redis_server)
        proxy = pool_proxy(start_proxy, tmp_path, members, fail_mode)
        for name in MEMBERS:
            wait_member(proxy, name, state="closed", source="redis")
        return proxy, hashes

    return ready


def publish(proxy: Kamailio, n: int = 300) -> collections.Counter[int]:
    with SipClient(proxy.address) as client:
        got = client.send_all([client.mwi_publish(f"{500000 + i}") for i in range(n)], timeout=10)
    assert len(got) == n, f"expected {n} final responses, got {len(got)}"
    return collections.Counter(r.code for r in got.values())


def test_missing_member_hash_in_fail_mode_open_fails_its_subscribers_over(
    ready_pool: ReadyPool, members: dict[str, Responder]
) -> None:
    proxy, hashes = ready_pool("open")
    assert publish(proxy) == {200: 300}
    assert members["presence-b"].count("PUBLISH") > 0, "presence-b should be home to some"

    hashes["presence-b"].delete()
    wait_member(proxy, "presence-b", state="open", source="fallback", cause="missing")
    before = members["presence-b"].count("PUBLISH")
    codes = publish(proxy)
    assert codes == {200: 300}, f"one member without a verdict: expected 300 x 200, got {codes}"
    assert members["presence-b"].count("PUBLISH") == before, "forwarded to the member in fallback"


def test_redis_gone_in_fail_mode_closed_keeps_every_member(
    start_proxy: StartProxy,
    redis_server: Redis,
    members: dict[str, Responder],
    tmp_path: Path,
) -> None:
    hashes_for(redis_server, presence_b="open")
    proxy = pool_proxy(start_proxy, tmp_path, members, "closed")
    wait_member(proxy, "presence-b", state="open", source="redis")
    redis_server.stop()
    for name in MEMBERS:
        wait_member(proxy, name, state="closed", source="fallback", cause="unreachable")
    before = {n: r.count("PUBLISH") for n, r in members.items()}
    assert publish(proxy) == {200: 300}
    grew = [n for n, r in members.items() if r.count("PUBLISH") > before[n]]
    assert grew == list(MEMBERS), f"fail mode closed: expected all members used, got {grew}"


def test_redis_gone_in_fail_mode_open_answers_503_locally(
    ready_pool: ReadyPool, members: dict[str, Responder], redis_server: Redis
) -> None:
    proxy, _ = ready_pool("open")
    redis_server.stop()
    for name in MEMBERS:
        wait_member(proxy, name, state="open", source="fallback", cause="unreachable")
    before = sum(r.count("PUBLISH") for r in members.values())
    codes = publish(proxy, 100)
    assert codes == {503: 100}, f"fail mode open, Redis gone: expected 100 x 503, got {codes}"
    assert sum(r.count("PUBLISH") for r in members.values()) == before, "forwarded while open"


def test_request_for_one_member_follows_that_members_verdict(
    ready_pool: ReadyPool, members: dict[str, Responder]
) -> None:
    """A MESSAGE whose R-URI is a member's address goes there, or 503 while it is open."""
    proxy, hashes = ready_pool("closed")
    b = members["presence-b"]
    with SipClient(proxy.address) as client:
        ok = client.transact(client.message(f"sip:127.0.0.1:{b.port}"))
        hashes["presence-b"].set("open", retry_after=20)
        wait_member(proxy, "presence-b", state="open", source="redis")
        before = b.count("MESSAGE")
        held = client.transact(client.message(f"sip:127.0.0.1:{b.port}"))
    assert ok.code == 200 and before == 1, f"closed: expected 200 from the member, got {ok.code}"
    assert held.code == 503 and held.header("Retry-After"), f"open: expected 503, got {held.code}"
    assert b.count("MESSAGE") == before, "forwarded to an open member"


def test_redis_commands_from_the_pool_poller_do_not_grow_with_sip_traffic(
    ready_pool: ReadyPool, members: dict[str, Responder], redis_server: Redis
) -> None:
    """One EVAL per poll, idle or busy (the full measurement is `python -m bench --only pool`)."""
    proxy, _ = ready_pool("closed")
    client = redis.Redis(port=redis_server.port, decode_responses=True)

    def evals_during(seconds: float, traffic: bool) -> float:
        client.config_resetstat()
        started = time.monotonic()
        sent = 0
        with SipClient(proxy.address) as sip:
            while time.monotonic() - started < seconds:
                if traffic:  # answers are not the point here: only that traffic flows
                    sip.send_all([sip.mwi_publish(f"{700000 + sent + i}") for i in range(50)], 1)
                    sent += 50
                else:
                    time.sleep(0.05)
        elapsed = time.monotonic() - started
        stats = client.info("commandstats")
        return int(stats.get("cmdstat_eval", {}).get("calls", 0)) / elapsed

    idle = evals_during(1.5, False)
    forwarded = sum(r.count("PUBLISH") for r in members.values())
    busy = evals_during(1.5, True)
    forwarded = sum(r.count("PUBLISH") for r in members.values()) - forwarded
    client.close()
    assert forwarded >= 300, f"busy window: expected traffic to the members, saw {forwarded}"
    assert 5 <= idle <= 11 and 5 <= busy <= 11, (
        f"expected about one EVAL per 100 ms poll, idle and busy alike: {idle:.1f}/s, {busy:.1f}/s"
    )
