"""Three real sidecars, one real Redis, one verdict."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testbed.procs import Child
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.support.fleet import observer, states_while_partitioned
from tests.support.sidecar import Sidecar

INTERVAL, TIMEOUT, FALL = 0.2, 0.1, 3
BOUND = FALL * INTERVAL + TIMEOUT
SLACK = 0.6  # a loaded 2-core CI box delays timers
PARTITION_WINDOW = 5.0  # bench/fleet.py holds the partition for 30 s
KEY = "breaker:{presence}"


class Fleet:
    def __init__(self) -> None:
        self.sidecars: dict[str, Sidecar] = {}

    def stop(self) -> None:
        for sidecar in self.sidecars.values():
            sidecar.stop()


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet()
    try:
        yield f
    finally:
        f.stop()


def start(fleet: Fleet, tmp_path: Path, redis: Redis, ports: dict[str, int], **kw: object) -> None:
    for name, port in ports.items():
        cluster = str(kw.pop(f"cluster_{name}", ""))
        extra = kw.pop(f"breaker_{name}", {})
        sc = observer(tmp_path / name, redis.url, name, port, cluster, **extra)  # type: ignore[arg-type]
        fleet.sidecars[name] = sc
    with ThreadPoolExecutor(len(ports)) as pool:  # three interpreters start in parallel
        list(pool.map(Sidecar.start, fleet.sidecars.values()))


def field(redis: Redis, name: str) -> str:
    try:
        return redis.cli("HGET", KEY, name)
    except Exception:
        return ""


def transitions(redis: Redis) -> int:
    log = redis.cli("XRANGE", f"{KEY}:log", "-", "+")
    return log.count("transition")


def test_one_partitioned_observer_leaves_the_verdict_closed(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], fleet: Fleet
) -> None:
    (frozen, frozen_port), (_, healthy_port) = standins
    ports = {"a": frozen_port, "b": healthy_port, "c": healthy_port}
    start(fleet, tmp_path, redis_server, ports)
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "3", 10, what="three votes")
    states = states_while_partitioned(redis_server, frozen, "a", PARTITION_WINDOW)
    assert states == {"closed"}, f"expected closed throughout, saw {states}"
    assert transitions(redis_server) == 0, "expected 0 transitions in the audit stream"


def test_all_three_see_the_freeze_and_open_within_the_bound(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], fleet: Fleet
) -> None:
    (proc, port), _ = standins
    start(fleet, tmp_path, redis_server, {"a": port, "b": port, "c": port})
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "3", 10, what="three votes")
    frozen_at = time.monotonic()
    proc.signal(signal.SIGSTOP)
    wait_until(lambda: field(redis_server, "state") == "open", 10, interval=0.005, what="open")
    took = time.monotonic() - frozen_at
    limit = BOUND + INTERVAL + SLACK  # the bound plus one vote refresh
    assert took <= limit, f"expected open within {limit:.2f}s, took {took:.2f}s"
    assert transitions(redis_server) == 1, "one audit event for the change, not one per writer"
    proc.signal(signal.SIGCONT)
    wait_until(lambda: field(redis_server, "state") == "half_open", 10, what="half_open")
    admits = []
    while field(redis_server, "state") == "half_open":
        admit = field(redis_server, "admit")
        if admit.isdigit():
            admits.append(int(admit))
        time.sleep(0.02)
    assert admits == sorted(admits), f"one fleet ramp: admit must never go back, saw {admits}"
    assert field(redis_server, "state") == "closed"


def test_the_survivor_of_three_keeps_the_hash_fresh_and_detects_alone(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], fleet: Fleet
) -> None:
    (proc, port), _ = standins
    short_votes = "vote_ttl = 1.0\n"
    start(
        fleet, tmp_path, redis_server, {"a": port, "b": port, "c": port},
        cluster_a=short_votes, cluster_b=short_votes, cluster_c=short_votes,
    )  # fmt: skip
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "3", 10, what="three votes")
    for name in ("b", "c"):
        proc_b = fleet.sidecars[name].proc
        assert proc_b is not None
        proc_b.signal(signal.SIGKILL)
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "1", 5, what="votes expire")
    first = float(field(redis_server, "updated"))
    wait_until(lambda: float(field(redis_server, "updated")) > first + 0.5, 3, what="fresh")
    frozen_at = time.monotonic()
    proc.signal(signal.SIGSTOP)
    wait_until(lambda: field(redis_server, "state") == "open", 10, interval=0.005, what="open")
    took = time.monotonic() - frozen_at
    assert took <= BOUND + INTERVAL + SLACK, f"the survivor alone took {took:.2f}s to open"
    proc.signal(signal.SIGCONT)


def test_a_force_through_one_sidecar_is_honoured_through_another(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], fleet: Fleet
) -> None:
    (_, port), _ = standins
    start(
        fleet, tmp_path, redis_server, {"a": port, "b": port, "c": port},
        breaker_c={"fall": 4},
    )  # fmt: skip
    a, b = fleet.sidecars["a"], fleet.sidecars["b"]
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "3", 10, what="three votes")
    forced = a.put("/v1/breakers/presence/force", {"state": "open", "ttl": 60, "reason": "drill"})
    assert forced.status_code == 200, forced.text

    def b_sees_force() -> bool:
        body = b.get("/v1/breakers/presence").json()
        return body["state"] == "open" and (body.get("forced") or {}).get("reason") == "drill"

    wait_until(b_sees_force, 5, what="the force through a to show on b")
    assert b.get("/v1/breakers/presence/allow").status_code == 503, "b must honour a's force"
    released = b.delete("/v1/breakers/presence/force")
    assert released.status_code == 200
    wait_until(
        lambda: a.get("/v1/breakers/presence").json()["state"] == "closed", 5, what="release"
    )
    log = a.proc.output() if a.proc else ""  # observer c's fall differs from a's
    warnings = [line for line in log.splitlines() if "fleet.probe_settings_differ" in line]
    assert len(warnings) == 1 and "fall 3 here, 4 there" in warnings[0], warnings
