"""Fixtures for the Kamailio integration: real Kamailio, real Redis, real SIP on 127.0.0.1.

Reusable fixtures:
  kamailio_installed  - session, autouse: fails (never skips) when kamailio/kamcmd/sipp are missing
  responder           - counting UDP SIP responder (stand-in presence server, SIGSTOP-able)
  presence_server     - the real Kamailio presence server (presence-server.cfg, sqlite)
  breaker_hash        - writes breaker:{presence} in the `redis_server` fixture like the sidecar
  start_proxy         - factory: start_proxy(presence_port, **defines) -> running proxy
  proxy               - the proxy with defaults, forwarding to `responder`
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.kamailio import presence_server as shipped_presence_server
from testbed.procs import LabError, free_port, require, stopping
from testbed.redis import Redis
from tests.kamailio.harness import (
    PROXY_CFG,
    BreakerHash,
    Define,
    Kamailio,
    Responder,
    proxy_defines,
)

StartProxy = Callable[..., Kamailio]


@pytest.fixture(scope="session", autouse=True)
def kamailio_installed() -> None:
    """The suite needs real binaries; a missing one is a failure, not a skip."""
    try:
        require("kamailio", "kamcmd", "sipp", "redis-server")
    except LabError as missing:
        raise AssertionError(f"{missing} (see docs/kamailio.md, Tests)") from None


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[Responder]:
    with stopping(Responder(tmp_path / "responder").start()) as stand_in:
        yield stand_in


@pytest.fixture
def presence_server(tmp_path: Path) -> Iterator[Kamailio]:
    with stopping(shipped_presence_server(tmp_path / "presence", free_port())) as server:
        yield server.start()


@pytest.fixture
def breaker_hash(redis_server: Redis) -> Iterator[BreakerHash]:
    with contextlib.closing(BreakerHash(redis_server.port)) as hash_:
        yield hash_


@pytest.fixture
def start_proxy(tmp_path: Path, redis_server: Redis) -> Iterator[StartProxy]:
    started: list[Kamailio] = []

    def start(presence_port: int, **defines: Define) -> Kamailio:
        port = free_port()
        rundir = tmp_path / f"proxy-{len(started)}"
        proxy = Kamailio(
            PROXY_CFG,
            rundir,
            port,
            proxy_defines(port, presence_port, redis_server.port, **defines),
            name="proxy",
        )
        started.append(proxy)
        return proxy.start()

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def proxy(start_proxy: StartProxy, responder: Responder) -> Kamailio:
    return start_proxy(responder.port)
