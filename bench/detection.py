"""Detection: lock-up → breaker open, and → first local 503 at the proxy, over many freezes.

Real parts: the Kamailio presence server (presence-server.cfg) frozen with SIGSTOP
to its whole process group, the sidecar probing it (OPTIONS, interval 0.5 s,
timeout 0.25 s, fall 3, rise 2, slow_start 0, no reopen backoff, so each freeze
is independent), the proxy (kamailio.cfg, breaker route, BREAKER_POLL_MS 300)
forwarding presence to it, and a client sending one PUBLISH through the proxy
every 20 ms. Each freeze starts at a random phase of the probe cadence.

  lock-up → open: SIGSTOP to the sidecar's `transition … to open` event (its `at`);
  lock-up → 503:  SIGSTOP to the first 503 the client receives (resolution 20 ms).

Bounds: open `fall x interval + timeout`; 503 `fall x interval + timeout + poll`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench._common import Result, percentile
from lab._procs import (
    LOOPBACK,
    PROXY_CFG,
    Kamailio,
    Redis,
    Sidecar,
    free_port,
    presence_server,
    proxy_defines,
    sidecar_toml,
)
from lab._sip import SipUac, publish_mwi

INTERVAL, TIMEOUT, FALL, RISE, POLL_MS = 0.5, 0.25, 3, 2, 300
OPEN_BOUND = FALL * INTERVAL + TIMEOUT
REJECT_BOUND = OPEN_BOUND + POLL_MS / 1000
CLIENT_GAP = 0.02
GOAL = 1.1


class _Client:
    """PUBLISH every 20 ms through the proxy; remembers when 503s and 200s came back."""

    def __init__(self, uac: SipUac) -> None:
        self.uac = uac
        self.rejected: list[float] = []
        self.accepted: list[float] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._n = 0

    async def run(self) -> None:
        while True:
            self._n += 1
            task = asyncio.create_task(self._one(f"det{self._n % 500}"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(CLIENT_GAP)

    async def _one(self, user: str) -> None:
        outcome = await publish_mwi(self.uac, user, LOOPBACK, agent="detector")
        if outcome.status == 503:
            self.rejected.append(outcome.done_at)
        elif outcome.status is not None and 200 <= outcome.status < 300:
            self.accepted.append(outcome.done_at)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def _wait_for(predicate: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return False


async def _trials(
    presence: Kamailio, proxy: Kamailio, redis_url: str, count: int
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    client_redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client_redis.pubsub()
    await pubsub.subscribe("breaker:events")

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message and message.get("type") == "message":
                events.append(json.loads(message["data"]))

    listener = asyncio.create_task(listen())
    uac = await SipUac.open((LOOPBACK, proxy.port))
    client = _Client(uac)
    sender = asyncio.create_task(client.run())
    rng = random.Random(7)
    trials: list[dict[str, Any]] = []
    assert presence.child is not None
    try:
        for number in range(count):
            # healthy: the client gets 200s again and the breaker is closed
            since = time.time()
            healthy = await _wait_for(
                lambda since=since: any(t > since + 0.3 for t in client.accepted), 10
            )
            if not healthy:
                raise RuntimeError("the proxy does not forward again after a freeze")
            await asyncio.sleep(rng.uniform(0.5, 0.5 + INTERVAL))  # random probe phase
            presence.child.freeze()
            frozen = time.time()
            await _wait_for(
                lambda frozen=frozen: (
                    any(t >= frozen for t in client.rejected)
                    and any(e.get("to") == "open" and e["at"] >= frozen for e in events)
                ),
                5 * REJECT_BOUND,
            )
            presence.child.thaw()
            thawed = time.time()
            opened = min(
                (e["at"] for e in events if e.get("to") == "open" and e["at"] >= frozen),
                default=None,
            )
            rejected = min((t for t in client.rejected if t >= frozen), default=None)
            trials.append(
                {
                    "trial": number,
                    "open_s": round(opened - frozen, 4) if opened else None,
                    "reject_s": round(rejected - frozen, 4) if rejected else None,
                    "frozen_for_s": round(thawed - frozen, 3),
                }
            )
            await _wait_for(
                lambda thawed=thawed: any(
                    e.get("to") == "closed" and e["at"] >= thawed for e in events
                ),
                10,
            )
    finally:
        sender.cancel()
        client.cancel()
        listener.cancel()
        uac.close()
        await asyncio.gather(sender, listener, return_exceptions=True)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client_redis.aclose()
    return trials


def _stats(values: list[float], bound: float) -> dict[str, float]:
    return {
        "p50_s": round(percentile(values, 50), 3),
        "p95_s": round(percentile(values, 95), 3),
        "max_s": round(max(values), 3),
        "p50_ratio": round(percentile(values, 50) / bound, 3),
        "p95_ratio": round(percentile(values, 95) / bound, 3),
        "max_ratio": round(max(values) / bound, 3),
    }


def run(quick: bool, workdir: Path) -> Result:
    count = 3 if quick else 25
    result = Result(
        "detection",
        "Detection: presence server lock-up → breaker open → first local 503",
        f"p95 ≤ {GOAL} x bound, over ≥ 20 freezes (full run)",
        quick,
    )
    started = time.monotonic()
    redis = Redis(workdir / "redis").start()
    presence_port, proxy_port, api_port = free_port(), free_port(), free_port()
    presence = presence_server(workdir / "presence", presence_port)
    sidecar = Sidecar(
        workdir / "sidecar",
        sidecar_toml(
            redis_url=redis.url,
            api_port=api_port,
            breakers=[
                {
                    "name": "presence",
                    "target": f"sip:{LOOPBACK}:{presence_port};transport=udp",
                    "interval": INTERVAL,
                    "timeout": TIMEOUT,
                    "fall": FALL,
                    "rise": RISE,
                    "slow_start": 0.0,
                    "reopen_window": 0.0,
                }
            ],
            level="warning",
        ),
        api_port,
    )
    proxy = Kamailio(
        PROXY_CFG,
        workdir / "proxy",
        proxy_port,
        proxy_defines(proxy_port, presence_port, redis.port, BREAKER_POLL_MS=POLL_MS),
        name="proxy",
    )
    try:
        presence.start()
        sidecar.start()
        proxy.start()
        trials = asyncio.run(_trials(presence, proxy, redis.url, count))
    finally:
        proxy.stop()
        sidecar.stop()
        presence.stop()
        redis.stop()
    opens = [t["open_s"] for t in trials if t["open_s"] is not None]
    rejects = [t["reject_s"] for t in trials if t["reject_s"] is not None]
    if len(opens) < len(trials) or len(rejects) < len(trials):
        result.notes.append(
            f"{len(trials) - len(opens)} freezes without an open event and "
            f"{len(trials) - len(rejects)} without a 503 within {5 * REJECT_BOUND:g} s"
        )
    open_stats = _stats(opens, OPEN_BOUND) if opens else {}
    reject_stats = _stats(rejects, REJECT_BOUND) if rejects else {}
    result.data = {
        "freezes": len(trials),
        "policy": {"interval": INTERVAL, "timeout": TIMEOUT, "fall": FALL, "poll_ms": POLL_MS},
        "open": {"bound_s": OPEN_BOUND, **open_stats},
        "first_503": {"bound_s": REJECT_BOUND, **reject_stats},
        "trials": trials,
    }
    result.met = (
        bool(open_stats and reject_stats)
        and len(opens) == len(trials)
        and len(rejects) == len(trials)
        and open_stats["p95_ratio"] <= GOAL
        and reject_stats["p95_ratio"] <= GOAL
        and (quick or len(trials) >= 20)
    )
    result.summary = (
        f"{len(trials)} freezes; open p50/p95/max {open_stats.get('p50_s')}/"
        f"{open_stats.get('p95_s')}/{open_stats.get('max_s')} s (p95 "
        f"{open_stats.get('p95_ratio')} x {OPEN_BOUND} s); first 503 "
        f"{reject_stats.get('p50_s')}/{reject_stats.get('p95_s')}/{reject_stats.get('max_s')} s "
        f"(p95 {reject_stats.get('p95_ratio')} x {REJECT_BOUND} s)"
    )
    result.duration_s = time.monotonic() - started
    return result
