"""The detection benchmarks' stage: Redis, the presence server, a sidecar, and optionally
the proxy in front of it or Kamailio's dispatcher beside it. Started in that order,
stopped in reverse, whatever happens in between."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import _dispatcher
from testbed.kamailio import PROXY_CFG, Define, Kamailio, presence_server, proxy_defines
from testbed.procs import free_port
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml

Breakers = Callable[[int], Sequence[Mapping[str, object]]]  # presence port -> [[breakers]]


@dataclass(frozen=True)
class Stack:
    redis: Redis
    presence: Kamailio
    sidecar: Sidecar
    proxy: Kamailio | None
    dispatcher: Kamailio | None


@contextlib.contextmanager
def stack(
    workdir: Path,
    breakers: Breakers,
    *,
    proxy: Mapping[str, Define] | None = None,
    dispatch: Callable[[int], list[str]] | None = None,
) -> Iterator[Stack]:
    """`proxy`: extra defines for kamailio.cfg; `dispatch`: presence port -> URIs to ping."""
    redis = Redis(workdir / "redis").start()
    presence_port, api_port = free_port(), free_port()
    presence = presence_server(workdir / "presence", presence_port)
    config = sidecar_toml(
        redis_url=redis.url, api_port=api_port, breakers=breakers(presence_port), level="warning"
    )
    sidecar = Sidecar(workdir / "sidecar", config, api_port)
    front = None
    if proxy is not None:
        port = free_port()
        defines = proxy_defines(port, presence_port, redis.port, **proxy)
        front = Kamailio(PROXY_CFG, workdir / "proxy", port, defines, name="proxy")
    peer = None
    if dispatch is not None:
        peer = _dispatcher.dispatcher(workdir / "dispatcher", dispatch(presence_port))
    started: list[Kamailio | Sidecar] = []
    try:
        for part in (presence, sidecar, front, peer):
            if part is not None:
                part.start()
                started.append(part)
        yield Stack(redis, presence, sidecar, front, peer)
    finally:
        for part in reversed(started):
            part.stop()
        redis.stop()
