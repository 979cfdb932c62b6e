"""Every sidecar votes, with or without a [cluster] section: two real sidecars on one
real Redis, configured alike, no longer fight over the verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testbed.procs import Child
from testbed.redis import Redis
from testbed.waiting import wait_until
from tests.support.fleet import sip_target, states_while_partitioned
from tests.support.sidecar import Sidecar

KEY = "breaker:{presence}"
WINDOW = 3.0  # bench/fleet.py holds a partition for 30 s


@pytest.fixture
def pair() -> Iterator[list[Sidecar]]:
    sidecars: list[Sidecar] = []
    try:
        yield sidecars
    finally:
        for sidecar in sidecars:
            sidecar.stop()


def sidecar(workdir: Path, redis: Redis, port: int) -> Sidecar:
    workdir.mkdir(parents=True)
    return Sidecar(workdir, redis.url, sip_target(port))


def start_both(sidecars: list[Sidecar], envs: list[dict[str, str]]) -> None:
    with ThreadPoolExecutor(len(sidecars)) as pool:  # two interpreters start in parallel
        list(pool.map(lambda s, env: s.start(env=env), sidecars, envs))


def test_two_sidecars_without_a_cluster_section_vote_instead_of_fighting(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], pair: list[Sidecar]
) -> None:
    """Same settings, no [cluster], observer ids from the environment. Each probes the
    server over its own path: a's path freezes (a partition), b's stays healthy. Under
    the default quorum (majority: more than half of the live observers, so 2 of 2),
    one observer alone cannot open the breaker."""
    (frozen, frozen_port), (_, healthy_port) = standins
    for name, port in (("a", frozen_port), ("b", healthy_port)):
        pair.append(sidecar(tmp_path / name, redis_server, port))
    assert all("[cluster]" not in s.config.read_text() for s in pair), "no [cluster] section"
    start_both(pair, [{"BREAKER_CLUSTER__OBSERVER": name} for name in ("a", "b")])
    wait_until(lambda: redis_server.cli("HLEN", f"{KEY}:votes") == "2", 10, what="two votes")
    assert sorted(redis_server.cli("HKEYS", f"{KEY}:votes").split()) == ["a", "b"]
    states = states_while_partitioned(redis_server, frozen, "a", WINDOW)
    log = redis_server.cli("XRANGE", f"{KEY}:log", "-", "+")
    assert states == {"closed"}, f"expected closed throughout, saw {states}"
    assert log.count("transition") == 0, f"expected 0 transitions in the audit stream: {log}"


def test_two_sidecars_sharing_a_host_name_are_told_to_set_an_observer(
    tmp_path: Path, redis_server: Redis, standins: list[tuple[Child, int]], pair: list[Sidecar]
) -> None:
    """Both default to this host's name: their votes overwrite each other, so a sidecar
    must say so (once) rather than let them fight in silence."""
    (_, port), _ = standins
    for name in ("a", "b"):
        pair.append(sidecar(tmp_path / name, redis_server, port))
    start_both(pair, [{}, {}])

    def warnings() -> list[str]:
        lines = []
        for sidecar in pair:
            output = sidecar.proc.output() if sidecar.proc else ""
            lines += [line for line in output.splitlines() if "fleet.observer_id_shared" in line]
        return lines

    wait_until(lambda: warnings(), 10, what="a warning about the shared observer id")
    time.sleep(1.0)  # several more votes each: still one line per sidecar at most
    seen = warnings()
    assert 1 <= len(seen) <= 2, f"expected one line per sidecar at most, saw {len(seen)}"
    assert "BREAKER_CLUSTER__OBSERVER" in seen[0] and "[cluster] observer" in seen[0], seen[0]
    assert redis_server.cli("HLEN", f"{KEY}:votes") == "1", "one observer id, one vote field"
