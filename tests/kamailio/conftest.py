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

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab._procs import create_presence_db
from tests.kamailio.harness import (
    PRESENCE_CFG,
    PROXY_CFG,
    BreakerHash,
    Define,
    Kamailio,
    Responder,
    kamailio_binary,
    presence_defines,
    proxy_defines,
)
from tests.support.procs import RedisServer, free_port_both

StartProxy = Callable[..., Kamailio]


@pytest.fixture(scope="session", autouse=True)
def kamailio_installed() -> str:
    """The suite needs real binaries; a missing one is a failure, not a skip."""
    for tool in ("kamcmd", "sipp", "redis-server"):
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is not installed (see docs/kamailio.md, Tests)")
    return kamailio_binary()


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[Responder]:
    stand_in = Responder(tmp_path / "responder").start()
    try:
        yield stand_in
    finally:
        stand_in.stop()


@pytest.fixture
def presence_server(tmp_path: Path) -> Iterator[Kamailio]:
    rundir = tmp_path / "presence"
    db = create_presence_db(rundir / "presence.sqlite")
    port = free_port_both()
    server = Kamailio(PRESENCE_CFG, rundir, port, presence_defines(port, db), name="presence")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def breaker_hash(redis_server: RedisServer) -> Iterator[BreakerHash]:
    hash_ = BreakerHash(redis_server.port)
    try:
        yield hash_
    finally:
        hash_.client.close()


@pytest.fixture
def start_proxy(tmp_path: Path, redis_server: RedisServer) -> Iterator[StartProxy]:
    started: list[Kamailio] = []

    def start(presence_port: int, **defines: Define) -> Kamailio:
        port = free_port_both()
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
