"""Detection: how fast a presence-server lock-up opens the breaker, three ways.

Real parts everywhere: the Kamailio presence server (presence-server.cfg) frozen
with SIGSTOP to its whole process group at a random phase of every prober's
cadence, real sidecars, Redis, Kamailio proxies.

1. **Bound** (interval 0.5 s, timeout 0.25 s, fall 3, rise 2, slow_start 0, no
   reopen backoff; proxy with the breaker route, BREAKER_POLL_MS 300; a client
   sending one PUBLISH through it every 20 ms):
     lock-up → open: SIGSTOP to the sidecar's `transition … to open` event;
     lock-up → 503:  SIGSTOP to the first 503 the client receives (resolution 20 ms);
   against the bound `interval + (fall - 1) x max(fast_interval, timeout) + timeout`
   (+ poll for the 503).
2. **Peer**: Kamailio 5.6's dispatcher (bench/dispatcher.cfg: ds_ping_interval 1 s,
   ds_probing_threshold 3, tm fr_timer 2 s) and the sidecar at its *defaults*
   (interval 1 s, timeout 0.5 s, fall 3, fast_interval = timeout) watch the same
   stand-in, one probe a second each; a second breaker in the same sidecar with
   `fast_interval = interval` (no confirmation probes) is the naive prober. Lock-up
   → the dispatcher's `dispatcher:dst-down` event (its own clock, logged) and →
   each breaker's open event (the time the bench receives it from Redis).
3. **Live traffic**: the sidecar at its defaults plus `passive_failure_ratio`, a proxy
   with BREAKER_PRESENCE_FR_MS, and lock-up → open with a client sending 100
   PUBLISH/s through the proxy vs. with the client idle, interleaved freeze by freeze.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import _dispatcher
from bench._common import Result, median, percentile
from bench._stack import stack
from breaker.core import detection_bound
from breaker.store import EVENTS_CHANNEL
from lab._sip import SipUac, publish_mwi
from testbed.kamailio import Kamailio
from testbed.procs import LOOPBACK

# 1. bound
INTERVAL, TIMEOUT, FALL, RISE, POLL_MS = 0.5, 0.25, 3, 2, 300
OPEN_BOUND = detection_bound(INTERVAL, TIMEOUT, TIMEOUT, FALL)  # fast_interval: its default
REJECT_BOUND = OPEN_BOUND + POLL_MS / 1000
CLIENT_GAP = 0.02
GOAL = 1.1
# 2. peer: the sidecar's defaults (BreakerConfig) against the tuned dispatcher
DEFAULT_INTERVAL, DEFAULT_TIMEOUT = 1.0, 0.5
DEFAULT_BOUND = detection_bound(DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_TIMEOUT, FALL)
PEER_GOAL = 0.5
TIMEOUT_FLOOR = 0.2  # its default
# 3. live traffic
LIVE_RATE = 100  # PUBLISH/s through the proxy
PRESENCE_FR_MS = 500  # the proxy's BREAKER_PRESENCE_FR_MS
PASSIVE_RATIO = 0.5


class _Events:
    """Every breaker event published on Redis, with the time the bench received it."""

    def __init__(self, redis_url: str) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Events:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(EVENTS_CHANNEL)

        async def listen() -> None:
            try:
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message.get("type") == "message":
                        self.seen.append((time.time(), json.loads(message["data"])))
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

        self._task = asyncio.create_task(listen())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.redis.aclose()

    def first(self, name: str, to: str, since: float) -> float | None:
        """When the bench received `name`'s first transition to `to` after `since`."""
        return min(
            (
                at
                for at, e in self.seen
                if at >= since and e.get("name") == name and e.get("to") == to
            ),
            default=None,
        )

    def state(self, name: str) -> str:
        """The computed state after the last transition seen (closed before any)."""
        last = "closed"
        for _, e in self.seen:
            if e.get("name") == name and e.get("event") == "transition":
                last = str(e.get("to"))
        return last


class _Client:
    """PUBLISH every `gap` s through the proxy; remembers when 503s and 200s came back."""

    def __init__(self, uac: SipUac, gap: float = CLIENT_GAP) -> None:
        self.uac = uac
        self.gap = gap
        self.sending = True
        self.rejected: list[float] = []
        self.accepted: list[float] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._n = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self.sending:
                self._n += 1
                task = asyncio.create_task(self._one(f"det{self._n % 500}"))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            next_at += self.gap
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def _one(self, user: str) -> None:
        outcome = await publish_mwi(self.uac, user, LOOPBACK, agent="detector")
        if outcome.status == 503:
            self.rejected.append(outcome.done_at)
        elif outcome.status is not None and 200 <= outcome.status < 300:
            self.accepted.append(outcome.done_at)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


@contextlib.asynccontextmanager
async def _client(port: int, gap: float) -> AsyncIterator[_Client]:
    """A _Client sending through the proxy on `port` for the length of the block."""
    uac = await SipUac.open((LOOPBACK, port))
    client = _Client(uac, gap)
    sender = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        sender.cancel()
        client.cancel()
        uac.close()
        await asyncio.gather(sender, return_exceptions=True)


async def _wait_for(predicate: Callable[..., bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return False


async def _freeze_until(presence: Kamailio, seen: Callable[[float], bool], within: float) -> float:
    """SIGSTOP the presence server, wait until `seen(frozen_at)` or `within` s; `frozen_at`.

    The caller thaws it: some trials wait for more before they do.
    """
    presence.freeze()
    frozen = time.time()
    await _wait_for(lambda: seen(frozen), within)
    return frozen


def _breaker(name: str, target: int, **policy: Any) -> dict[str, Any]:
    """A breaker that forgets each freeze: rise 2, no ramp, no reopen backoff."""
    return {
        "name": name,
        "target": f"sip:{LOOPBACK}:{target};transport=udp",
        "rise": RISE,
        "slow_start": 0.0,
        "reopen_window": 0.0,
        **policy,
    }


# ---------------------------------------------------------------- 1. bound


async def _bound_trials(
    presence: Kamailio, proxy: Kamailio, redis_url: str, count: int
) -> list[dict[str, Any]]:
    rng = random.Random(7)
    trials: list[dict[str, Any]] = []
    async with _client(proxy.port, CLIENT_GAP) as client, _Events(redis_url) as events:
        for number in range(count):
            # healthy: the client gets 200s again and the breaker is closed
            since = time.time()
            healthy = await _wait_for(
                lambda since=since: any(t > since + 0.3 for t in client.accepted), 10
            )
            if not healthy:
                raise RuntimeError("the proxy does not forward again after a freeze")
            await asyncio.sleep(rng.uniform(0.5, 0.5 + INTERVAL))  # random probe phase
            frozen = await _freeze_until(
                presence,
                lambda at: (
                    any(t >= at for t in client.rejected)
                    and events.first("presence", "open", at) is not None
                ),
                5 * REJECT_BOUND,
            )
            presence.thaw()
            thawed = time.time()
            opened = events.first("presence", "open", frozen)
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
                lambda thawed=thawed: events.first("presence", "closed", thawed) is not None,
                10,
            )
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


def _bound(count: int, workdir: Path) -> dict[str, Any]:
    with stack(
        workdir,
        lambda port: [_breaker("presence", port, interval=INTERVAL, timeout=TIMEOUT, fall=FALL)],
        proxy={"BREAKER_POLL_MS": POLL_MS},
    ) as run:
        assert run.proxy is not None
        trials = asyncio.run(_bound_trials(run.presence, run.proxy, run.redis.url, count))
    opens = [t["open_s"] for t in trials if t["open_s"] is not None]
    rejects = [t["reject_s"] for t in trials if t["reject_s"] is not None]
    return {
        "freezes": len(trials),
        "missing": {"open": len(trials) - len(opens), "first_503": len(trials) - len(rejects)},
        "policy": {"interval": INTERVAL, "timeout": TIMEOUT, "fall": FALL, "poll_ms": POLL_MS},
        "open": {"bound_s": OPEN_BOUND, **(_stats(opens, OPEN_BOUND) if opens else {})},
        "first_503": {
            "bound_s": REJECT_BOUND,
            **(_stats(rejects, REJECT_BOUND) if rejects else {}),
        },
        "trials": trials,
    }


# ---------------------------------------------------------------- 2. peer

# the defaults; with a fixed timeout; no confirmation probes, fixed timeout (the old defaults)
PEER_BREAKERS = ("presence", "fixed", "naive")


def _ds_first(disp: Kamailio, kind: str, since: float) -> float | None:
    return min(
        (v.at for v in _dispatcher.verdicts(disp) if v.kind == kind and v.at >= since), default=None
    )


def _ds_up(disp: Kamailio) -> bool:
    found = _dispatcher.verdicts(disp)
    return not found or found[-1].kind == "up"


async def _peer_trials(
    presence: Kamailio, disp: Kamailio, redis_url: str, count: int
) -> list[dict[str, Any]]:
    rng = random.Random(13)
    trials: list[dict[str, Any]] = []
    async with _Events(redis_url) as events:

        def healthy() -> bool:
            return _ds_up(disp) and all(events.state(n) == "closed" for n in PEER_BREAKERS)

        for number in range(count):
            if not await _wait_for(healthy, 20):
                raise RuntimeError("the dispatcher or the sidecar does not see the stand-in again")
            # a random phase against both cadences (1 s each), which drift apart freely
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            frozen = await _freeze_until(
                presence,
                lambda at: (
                    _ds_first(disp, "down", at) is not None
                    and all(events.first(n, "open", at) for n in PEER_BREAKERS)
                ),
                20,
            )
            presence.thaw()
            found = {
                "dispatcher": _ds_first(disp, "down", frozen),
                **{n: events.first(n, "open", frozen) for n in PEER_BREAKERS},
            }
            trials.append(
                {"trial": number}
                | {f"{k}_s": round(v - frozen, 4) if v else None for k, v in found.items()}
            )
    return trials


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_s": round(median(values), 3),
        "p95_s": round(percentile(values, 95), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


def _peer(count: int, workdir: Path) -> dict[str, Any]:
    with stack(
        workdir,
        lambda port: [
            _breaker("presence", port),
            _breaker("fixed", port, adaptive_timeout=False),
            _breaker("naive", port, fast_interval=DEFAULT_INTERVAL, adaptive_timeout=False),
        ],
        dispatch=lambda port: [f"sip:{LOOPBACK}:{port}"],
    ) as run:
        assert run.dispatcher is not None
        trials = asyncio.run(_peer_trials(run.presence, run.dispatcher, run.redis.url, count))
        ds_list = run.dispatcher.rpc("dispatcher.list")
    rows = {
        key: _summary([t[f"{key}_s"] for t in trials if t[f"{key}_s"] is not None])
        for key in ("dispatcher", *PEER_BREAKERS)
    }
    ds = rows["dispatcher"].get("p50_s")

    def ratio(key: str, stat: str) -> float | None:
        mine, theirs = rows[key].get(stat), rows["dispatcher"].get(stat)
        return round(mine / theirs, 3) if mine and theirs else None

    for key in PEER_BREAKERS:
        rows[key]["p50_ratio"] = ratio(key, "p50_s")
        rows[key]["p95_ratio"] = ratio(key, "p95_s")
    return {
        "freezes": len(trials),
        "dispatcher_settings": {
            "ds_ping_interval_s": _dispatcher.PING_INTERVAL_S,
            "ds_probing_threshold": _dispatcher.THRESHOLD,
            "fr_timer_ms": _dispatcher.FR_TIMER_MS,
        },
        "sidecar_settings": {
            "interval": DEFAULT_INTERVAL,
            "timeout": DEFAULT_TIMEOUT,
            "fall": FALL,
            "fast_interval": DEFAULT_TIMEOUT,
            "adaptive_timeout": True,
            "timeout_floor": TIMEOUT_FLOOR,
            "bound_s": DEFAULT_BOUND,
        },
        "rows": rows,
        "median_ratio": ratio("presence", "p50_s"),
        "dispatcher_p50_s": ds,
        "dispatcher_list": ds_list.strip()[:600],
        "trials": trials,
    }


# ---------------------------------------------------------------- 3. live traffic


async def _live_trials(
    presence: Kamailio, proxy: Kamailio, redis_url: str, count: int
) -> list[dict[str, Any]]:
    rng = random.Random(17)
    trials: list[dict[str, Any]] = []
    async with _client(proxy.port, 1 / LIVE_RATE) as client, _Events(redis_url) as events:
        for number in range(2 * count):
            traffic = number % 2 == 0
            client.sending = traffic
            since = time.time()
            healthy = await _wait_for(
                lambda since=since, traffic=traffic: (
                    events.state("presence") == "closed"
                    and (not traffic or any(t > since + 0.5 for t in client.accepted))
                ),
                20,
            )
            if not healthy:
                raise RuntimeError("the breaker does not close again after a freeze")
            await asyncio.sleep(rng.uniform(1.0, 2.0))
            frozen = await _freeze_until(
                presence, lambda at: events.first("presence", "open", at) is not None, 20
            )
            if traffic:  # the proxy enforces it at its next poll
                await _wait_for(lambda frozen=frozen: any(t >= frozen for t in client.rejected), 2)
            presence.thaw()
            opened = events.first("presence", "open", frozen)
            rejected = min((t for t in client.rejected if t >= frozen), default=None)
            reason = next(
                (
                    e.get("reason")
                    for at, e in events.seen
                    if at == opened and e.get("to") == "open"
                ),
                None,
            )
            trials.append(
                {
                    "trial": number,
                    "traffic": traffic,
                    "open_s": round(opened - frozen, 4) if opened else None,
                    "reject_s": round(rejected - frozen, 4) if rejected else None,
                    "reason": reason,
                }
            )
    return trials


def _live(count: int, workdir: Path) -> dict[str, Any]:
    with stack(
        workdir,
        lambda port: [_breaker("presence", port, passive_failure_ratio=PASSIVE_RATIO)],
        proxy={"BREAKER_POLL_MS": POLL_MS, "BREAKER_PRESENCE_FR_MS": PRESENCE_FR_MS},
    ) as run:
        assert run.proxy is not None
        trials = asyncio.run(_live_trials(run.presence, run.proxy, run.redis.url, count))
    rows = {}
    for label, traffic in (("with_traffic", True), ("without_traffic", False)):
        mine = [t for t in trials if t["traffic"] is traffic]
        rows[label] = {
            **_summary([t["open_s"] for t in mine if t["open_s"] is not None]),
            "reasons": sorted({str(t["reason"]) for t in mine}),
        }
    with_p50 = rows["with_traffic"].get("p50_s")
    without_p50 = rows["without_traffic"].get("p50_s")
    return {
        "freezes": len(trials),
        "rate_per_s": LIVE_RATE,
        "presence_fr_ms": PRESENCE_FR_MS,
        "passive_failure_ratio": PASSIVE_RATIO,
        "poll_ms": POLL_MS,
        "rows": rows,
        "ratio": round(with_p50 / without_p50, 3) if with_p50 and without_p50 else None,
        "first_503": _summary(
            [t["reject_s"] for t in trials if t["traffic"] and t["reject_s"] is not None]
        ),
        "trials": trials,
    }


# ---------------------------------------------------------------- all three


TITLE = "Detection: lock-up → open, against Kamailio's dispatcher, and → first local 503"
GOAL_TEXT = (
    f"median lock-up → open ≤ {PEER_GOAL} x the dispatcher's at the defaults, same probe "
    f"rate, over ≥ 20 freezes; p95 ≤ {GOAL} x bound"
)


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    count, peer_count, live_count = (2, 2, 1) if quick else (25, 25, 12)
    peer = _peer(peer_count, workdir / "peer")
    bound = _bound(count, workdir / "bound")
    live = _live(live_count, workdir / "live")
    result.data = {"peer": peer, "bound": bound, "live": live}
    opened, rejected = bound["open"], bound["first_503"]
    if any(bound["missing"].values()):
        result.notes.append(f"bound run: freezes without an event: {bound['missing']}")
    bound_met = (
        not any(bound["missing"].values())
        and opened.get("p95_ratio", 99) <= GOAL
        and rejected.get("p95_ratio", 99) <= GOAL
    )
    rows = peer["rows"]
    complete = all(rows[k]["n"] == peer["freezes"] for k in rows)
    if not complete:
        result.notes.append(f"peer run: some freezes were not detected within 20 s: {rows}")
    ratio = peer["median_ratio"]
    peer_met = complete and ratio is not None and ratio <= PEER_GOAL
    result.met = bound_met and peer_met and (quick or peer["freezes"] >= 20)
    me, ds = rows["presence"], rows["dispatcher"]
    lw, lo = live["rows"]["with_traffic"], live["rows"]["without_traffic"]
    result.summary = (
        f"peer ({peer['freezes']} freezes): sidecar p50/p95 {me.get('p50_s')}/{me.get('p95_s')} s, "
        f"dispatcher {ds.get('p50_s')}/{ds.get('p95_s')} s: median ratio {ratio} "
        f"(fixed timeout {rows['fixed'].get('p50_ratio')}, "
        f"naive {rows['naive'].get('p50_ratio')}); "
        f"bound: open p95 {opened.get('p95_ratio')} x {OPEN_BOUND:g} s, first 503 p95 "
        f"{rejected.get('p95_ratio')} x {REJECT_BOUND:g} s; live {LIVE_RATE} PUBLISH/s: "
        f"open p50 {lw.get('p50_s')} s vs {lo.get('p50_s')} s idle"
    )
    return result
