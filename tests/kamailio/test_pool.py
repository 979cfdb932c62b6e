"""Presence pool, nothing simulated: three real presence servers, the sidecar, Redis, the proxy.

The proxy runs kamailio.cfg with WITH_PRESENCE_POOL over a dispatcher.list naming
one breaker per member; the sidecar probes the three servers and derives the pool's
verdict. Which server answered is read from the Server header (SERVER_HEADER).
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from testbed.kamailio import (
    PRESENCE_CFG,
    PROXY_CFG,
    Define,
    Kamailio,
    check_config,
    create_presence_db,
    presence_defines,
    quoted,
)
from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.kamailio.harness import proxy_defines
from tests.kamailio.sip import Response, SipClient
from tests.support.sidecar import Sidecar

MEMBERS = ("presence-a", "presence-b", "presence-c")
SUBSCRIBERS = 1000
INTERVAL, TIMEOUT, FALL, RISE, SLOW_START = 0.2, 0.15, 3, 2, 4.0


@dataclass
class Pool:
    proxy: Kamailio
    servers: dict[str, Kamailio]
    sidecar: Sidecar
    redis: redis.Redis

    def publish_all(self, users: list[str], timeout: float = 15.0) -> dict[str, Response]:
        """One MWI PUBLISH per user; user -> final response."""
        with SipClient(self.proxy.address) as client:
            requests = [client.mwi_publish(u) for u in users]
            got = client.send_all(requests, timeout=timeout)
        return {r.to_user: got[r.call_id] for r in requests if r.call_id in got}

    def passive_forwarded(self, member: str) -> int:
        return int(self.redis.hget(f"breaker:{{{member}}}:passive", "forwarded") or 0)


def wait_member(proxy: Kamailio, name: str, timeout: float = 10.0, **expected: object) -> None:
    """Wait until the proxy's latest verdict line for member `name` matches `expected`."""

    def latest() -> bool:
        lines = [v for v in proxy.verdicts() if v.fields.get("name") == name]
        return bool(lines) and lines[-1].matches(**expected)

    try:
        wait_until(latest, timeout, what=f"{name} {expected}")
    except AssertionError:
        seen = [v.fields for v in proxy.verdicts() if v.fields.get("name") == name]
        raise AssertionError(f"{name}: no verdict {expected} in {timeout}s; seen {seen}") from None


@pytest.fixture
def start_guard(pool: Pool, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """`breaker guard presence -- sleep 60`: the vm-presence job, guarded on the pool."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        url = f"redis://127.0.0.1:{pool.redis.connection_pool.connection_kwargs['port']}/0"
        log = (tmp_path / "guard.log").open("wb")
        guard = subprocess.Popen(
            [sys.executable, "-m", "breaker", "guard", "presence", "--redis-url", url,
             "--no-lock", "--", "sleep", "60"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        started.append(guard)
        wait_until(lambda: b"sleep" in _children(guard.pid), 10, what="the guarded job to start")
        return guard

    yield start
    for guard in started:
        if guard.poll() is None:
            os.killpg(guard.pid, signal.SIGKILL)
            guard.wait(5)


def _children(pid: int) -> bytes:
    return subprocess.run(["ps", "-o", "comm=", "--ppid", str(pid)], capture_output=True).stdout


def served_by(response: Response) -> str:
    """The member that answered (SERVER_HEADER), or `local` for the proxy's own reply."""
    server = response.header("server") or ""
    return server if server in MEMBERS else "local"


def write_sidecar_config(sidecar: Sidecar, redis_url: str, ports: dict[str, int]) -> None:
    lines = [
        "[redis]",
        f'url = "{redis_url}"',
        "[api]",
        'host = "127.0.0.1"',
        f"port = {sidecar.port}",
        "[logging]",
        'format = "json"',
    ]
    for name, port in ports.items():
        lines += [
            "[[breakers]]",
            f'name = "{name}"',
            f'target = "sip:127.0.0.1:{port};transport=udp"',
            f"interval = {INTERVAL}",
            f"timeout = {TIMEOUT}",
            f"slow = {TIMEOUT}",  # a thawed server is busy for a moment: only silence is a failure
            f"fall = {FALL}",
            f"rise = {RISE}",
            f"slow_start = {SLOW_START}",
            "reopen_backoff = 0.0",
        ]
    lines += ["[[pools]]", 'name = "presence"', f"members = {list(ports)!r}".replace("'", '"')]
    sidecar.config.write_text("\n".join(lines) + "\n")


@pytest.fixture
def pool(tmp_path: Path, redis_server: Redis) -> Iterator[Pool]:
    servers: dict[str, Kamailio] = {}
    started: list[Kamailio | Sidecar] = []
    try:
        for name in MEMBERS:
            port = free_port()
            rundir = tmp_path / name
            db = create_presence_db(rundir / "presence.sqlite")
            defines = presence_defines(port, db, SERVER_HEADER=quoted(f"Server: {name}"))
            server = Kamailio(
                PRESENCE_CFG, rundir, port, defines, name="presence", extra_args=["-m", "128"]
            )
            started.append(server)
            servers[name] = server.start()
        dslist = tmp_path / "dispatcher.list"
        dslist.write_text(
            "".join(f"1 sip:127.0.0.1:{s.port} 0 0 breaker={n}\n" for n, s in servers.items())
        )
        (tmp_path / "sidecar").mkdir()
        sidecar = Sidecar(tmp_path / "sidecar", redis_server.url, "sip:127.0.0.1:1")
        write_sidecar_config(sidecar, redis_server.url, {n: s.port for n, s in servers.items()})
        started.append(sidecar)
        sidecar.start()
        port = free_port()
        defines = proxy_defines(
            port,
            1,
            redis_server.port,
            WITH_PRESENCE_POOL=True,
            PRESENCE_DSLIST=quoted(str(dslist)),
            PRESENCE_FR_TIMER=2000,
        )
        # ~17 kB of shm per transaction (Debian build), kept 5 s: 1,000-subscriber rounds
        # back to back need more than the 64 MB default
        proxy = Kamailio(
            PROXY_CFG, tmp_path / "proxy", port, defines, name="proxy", extra_args=["-m", "256"]
        )
        started.append(proxy)
        proxy.start()
        for name in MEMBERS:
            wait_member(proxy, name, state="closed", source="redis")
        client = redis.Redis(port=redis_server.port, decode_responses=True, socket_timeout=2)
        yield Pool(proxy, servers, sidecar, client)
        client.close()
    finally:
        for proc in reversed(started):
            proc.stop()


def users(n: int = SUBSCRIBERS) -> list[str]:
    return [f"{100000 + i * 7919}" for i in range(n)]  # numeric mailboxes, as in production


def homes(pool: Pool) -> dict[str, str]:
    """Every subscriber's server with all members closed (asserting all were answered 200)."""
    answers = pool.publish_all(users())
    assert len(answers) == SUBSCRIBERS and all(a.code == 200 for a in answers.values()), (
        f"all closed: expected {SUBSCRIBERS} x 200, got "
        f"{collections.Counter(a.code for a in answers.values())} of {len(answers)}"
    )
    return {u: served_by(a) for u, a in answers.items()}


def test_kamailio_check_passes_with_and_without_the_pool(tmp_path: Path) -> None:
    dslist = Path(__file__).resolve().parents[2] / "kamailio-config" / "dispatcher.list"
    variants: tuple[dict[str, Define], ...] = (
        {},
        {"WITH_PRESENCE_POOL": True, "PRESENCE_DSLIST": quoted(str(dslist))},
        {
            "WITH_PRESENCE_POOL": True,
            "PRESENCE_DSLIST": quoted(str(dslist)),
            "PRESENCE_DSSET": 1,
            "BREAKER_PRESENCE_MAX_RATE": 100,
            "BREAKER_FAIL_MODE": quoted("last"),
        },
    )
    for defines in variants:
        result = check_config(PROXY_CFG, defines)
        assert result.returncode == 0, f"kamailio -c {defines}: {result.stderr[-2000:]}"


def test_all_closed_spreads_subscribers_in_proportion_and_always_to_the_same_server(
    pool: Pool,
) -> None:
    first = homes(pool)
    second = homes(pool)
    counts = collections.Counter(first.values())
    print(f"\nspread over the members: {dict(sorted(counts.items()))}")
    assert set(counts) == set(MEMBERS), f"expected all three servers used, saw {counts}"
    for name in MEMBERS:
        share = counts[name] / SUBSCRIBERS
        assert 0.25 <= share <= 0.42, f"{name}: expected about 1/3 of subscribers, got {share:.2f}"
    moved = [u for u in first if first[u] != second[u]]
    assert not moved, f"expected every subscriber on the same server twice, {len(moved)} moved"


def test_frozen_member_fails_over_then_its_subscribers_return_home(
    pool: Pool, start_guard: Callable[[], subprocess.Popen[bytes]]
) -> None:
    home = homes(pool)
    guard = start_guard()
    theirs = [u for u, h in home.items() if h == "presence-b"]
    frozen = pool.servers["presence-b"]
    assert frozen.proc is not None
    frozen.proc.freeze()
    locked_at = time.monotonic()
    # lock-up -> first failed-over 200 for one of its subscribers
    with SipClient(pool.proxy.address) as client:

        def failed_over() -> Response | None:
            got = list(client.send_all([client.mwi_publish(theirs[0])], timeout=0.3).values())
            return got[0] if got and got[0].code == 200 else None

        first_200 = wait_until(failed_over, 10, what="a failed-over 200", interval=0.05)
    failover_time = time.monotonic() - locked_at
    assert first_200 is not None and served_by(first_200) != "presence-b"
    wait_member(pool.proxy, "presence-b", state="open", source="redis")
    forwarded_before = pool.passive_forwarded("presence-b")

    answers = pool.publish_all(users())
    codes = collections.Counter(a.code for a in answers.values())
    assert codes == {200: SUBSCRIBERS}, f"one frozen: expected 1000 x 200, 0 local 503; got {codes}"
    by = collections.Counter(served_by(answers[u]) for u in theirs)
    assert by["presence-b"] == 0 and sum(by.values()) == len(theirs), (
        f"its {len(theirs)} subscribers: expected all answered by the other two, got {by}"
    )
    still_home = [u for u, h in home.items() if h != "presence-b" and served_by(answers[u]) != h]
    assert not still_home, f"other members' subscribers should not move: {len(still_home)} did"
    time.sleep(0.4)  # one proxy poll: the counters reach Redis
    assert pool.passive_forwarded("presence-b") == forwarded_before, "forwarded to the frozen one"
    pool_state = httpx.get(f"{pool.sidecar.url}/v1/breakers/presence", timeout=2).json()
    assert pool_state["state"] == "closed" and pool_state["kind"] == "pool", (
        f"one of three down, min_healthy 2: pool expected closed, got {pool_state['state']}"
    )
    assert guard.poll() is None, f"job guarded on the pool stopped (exit {guard.returncode})"
    print(f"\nlock-up -> first failed-over 200: {failover_time:.2f}s; "
          f"its subscribers answered 200 after detection: {by.total()}/{len(theirs)}")  # fmt: skip

    # thaw: the ramp brings its subscribers home, each moving at most once
    frozen.proc.thaw()
    where: dict[str, list[str]] = {u: [] for u in theirs}
    shares: list[float] = []
    not_200: collections.Counter[tuple[int, str]] = collections.Counter()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        round_at = time.monotonic()
        answers = pool.publish_all(theirs, timeout=3.0)
        for u, a in answers.items():
            if a.code == 200:  # a member answered; a 408 is the proxy's own timeout
                where[u].append(served_by(a))
            else:
                not_200[(a.code, served_by(a))] += 1
        share = sum(1 for a in answers.values() if served_by(a) == "presence-b") / len(theirs)
        shares.append(share)
        if share == 1.0 and len(shares) > 1:
            break
        time.sleep(max(0.0, round_at + 0.3 - time.monotonic()))  # ~3 rounds/s
    moves = {u: sum(1 for x, y in itertools.pairwise(seq) if x != y) for u, seq in where.items()}
    # A thawed presence server can stall again under its returning share: the sidecar then
    # reopens it, and its subscribers move back to the failover and home again once more.
    # Each reopen allows two more moves; without one, a subscriber moves at most once.
    opens = [v for v in pool.proxy.verdicts() if v.matches(name="presence-b", state="open")]
    reopens = len(opens) - 1
    allowed = 1 + 2 * reopens
    too_many = [u for u, m in moves.items() if m > allowed]
    print(
        f"recovery shares at presence-b: {[round(s, 2) for s in shares]}; reopens: {reopens}; "
        f"moved more than once: {sum(1 for m in moves.values() if m > 1)}; "
        f"not answered 200 during the ramp: {dict(not_200)}"
    )
    assert shares[-1] == 1.0, f"expected all its subscribers home at the end, shares {shares}"
    ramp = [v for v in pool.proxy.verdicts() if v.matches(name="presence-b", state="half_open")]
    assert ramp and 0 < int(ramp[0]["admit"]) < 100, "expected the proxy to apply the ramp"
    assert not not_200, f"expected every subscriber answered 200 during the ramp: {not_200}"
    assert not too_many, (
        f"expected each subscriber to move at most {allowed} time(s) ({reopens} reopens): "
        f"{len(too_many)} moved more"
    )


def test_all_members_frozen_answer_503_locally_and_forward_nothing(
    pool: Pool, start_guard: Callable[[], subprocess.Popen[bytes]]
) -> None:
    guard = start_guard()
    for server in pool.servers.values():
        assert server.proc is not None
        server.proc.freeze()
    for name in MEMBERS:
        wait_member(pool.proxy, name, state="open", source="redis")
    time.sleep(0.4)  # one poll: in-flight counters reach Redis
    forwarded = {m: pool.passive_forwarded(m) for m in MEMBERS}
    answers = pool.publish_all(users(300), timeout=10)
    codes = collections.Counter(a.code for a in answers.values())
    assert codes == {503: 300}, f"all frozen: expected 300 local 503, got {codes} of {len(answers)}"
    assert all(a.header("Retry-After") for a in answers.values()), "503 without Retry-After"
    time.sleep(0.4)
    after = {m: pool.passive_forwarded(m) for m in MEMBERS}
    assert after == forwarded, f"expected nothing forwarded: before {forwarded}, after {after}"
    allow = httpx.get(f"{pool.sidecar.url}/v1/breakers/presence/allow", timeout=2)
    assert allow.status_code == 503 and allow.headers.get("Retry-After"), (
        f"pool open: /allow expected 503 + Retry-After, got {allow.status_code}"
    )
    stored = pool.redis.hgetall("breaker:{presence}")
    assert stored.get("state") == "open", f"pool hash in Redis: expected open, got {stored}"
    try:
        assert guard.wait(10) == 79, (
            f"guard on the pool: expected 79 (stopped), got {guard.returncode}"
        )
    finally:
        if guard.poll() is None:
            os.killpg(guard.pid, signal.SIGKILL)
    for server in pool.servers.values():
        assert server.proc is not None
        server.proc.thaw()
