"""The one place that wires probes → core → store, metrics and the API.

Everything here is orchestration: when to probe, what to hand to the pure core,
where its verdict goes. Decisions live in breaker.core.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from breaker import core
from breaker._config import BreakerConfig, Settings
from breaker._errors import StoreUnavailable
from breaker._logging import get_logger
from breaker._metrics import Metrics
from breaker.core import Breaker, Event, Policy, State, Step, Verdict
from breaker.probes import Probe, ProbeResult, SipResolver, make_probe
from breaker.store import (
    GUARD_OUTCOMES,
    Publisher,
    RedisStore,
    event_dict,
    force_from_fields,
)

log = get_logger("breaker.service")

TICK_INTERVAL = 0.1  # force expiry and ramp end are noticed within this
RECENT_EVENTS = 200  # per breaker, served by the API while Redis is away
RECENT_PROBES = 60  # per breaker, for the status page's RTT sparkline
PROBE_GRACE = 0.2
GUARD_RUNS_INTERVAL = 5.0  # how often `breaker guard` outcome counts are read from Redis
STOP_STEP_TIMEOUT = 1.0  # extra time before a probe that ignores its own timeout is cancelled


def policy_for(cfg: BreakerConfig) -> Policy:
    return Policy(
        fall=cfg.fall,
        rise=cfg.rise,
        interval=cfg.interval,
        slow_start=cfg.slow_start,
        initial_admit=cfg.initial_admit,
        retry_after_max=cfg.retry_after_max,
        reopen_window=cfg.reopen_window,
        reopen_backoff=cfg.reopen_backoff,
        reopen_backoff_max=cfg.reopen_backoff_max,
        jitter=cfg.jitter,
        force_max_ttl=cfg.force_max_ttl,
    )


def state_ttl(settings: Settings, cfg: BreakerConfig) -> float:
    """Long enough to survive two missed writes, short enough that a dead sidecar shows."""
    return settings.redis.state_ttl or max(3 * cfg.interval, 2.0)


@dataclass
class Runtime:
    """Mutable holder for one breaker; only the event loop thread touches it."""

    cfg: BreakerConfig
    policy: Policy
    probe: Probe
    breaker: Breaker
    last_probe: ProbeResult | None = None
    probes_total: int = 0
    probe_failures_total: int = 0
    passive_failing: bool = False
    passive_seen: tuple[int, int] | None = None
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    last_verdict: Verdict | None = None  # metrics are only touched when this changes
    recent_probes: deque[ProbeResult] = field(default_factory=lambda: deque(maxlen=RECENT_PROBES))


@dataclass(frozen=True)
class BreakerStatus:
    verdict: Verdict
    cfg: BreakerConfig
    last_probe: ProbeResult | None
    probes_total: int
    probe_failures_total: int
    passive_failing: bool


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        probe_factory: Callable[[BreakerConfig], Probe] | None = None,
        store: RedisStore | None = None,
    ) -> None:
        if probe_factory is None:
            resolver = SipResolver()  # one DNS cache for every target

            def probe_factory(cfg: BreakerConfig) -> Probe:
                return make_probe(cfg, resolver=resolver)

        self.settings = settings
        self.clock = clock
        self.rand = rand
        self.metrics = Metrics()
        self.store = store or RedisStore(settings.redis)
        now = clock()
        self.runtimes: dict[str, Runtime] = {
            cfg.name: Runtime(
                cfg=cfg,
                policy=policy_for(cfg),
                probe=probe_factory(cfg),
                breaker=core.new_breaker(cfg.name, now),
            )
            for cfg in settings.breakers
        }
        self.publisher = Publisher(
            self.store,
            {cfg.name: state_ttl(settings, cfg) for cfg in settings.breakers},
            self.metrics,
            clock,
            on_stale=self._on_stale,
            on_connect=self._on_connect,
            pending_max=settings.redis.pending_events_max,
        )
        # Label lookups cost more than the increments; 1,000 targets probe 1,000 times a second.
        self._probe_metrics = {
            name: (self.metrics.probes.labels(name), self.metrics.probe_duration.labels(name))
            for name in self.runtimes
        }
        for cfg in settings.breakers:
            self.metrics.probe_timeout.labels(cfg.name).set(cfg.timeout)
            # every outcome from 0, so the first refusal is already an increase
            self.metrics.guard_runs.update(cfg.name, dict.fromkeys(GUARD_OUTCOMES, 0))
        self.metrics.info.labels(observer_id(settings)).set(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._restored = False
        for rt in self.runtimes.values():
            self._publish(rt, ())

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.publisher.run(), name="publisher"))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="tick"))
        self._tasks.append(asyncio.create_task(self._guard_runs_loop(), name="guard-runs"))
        for rt in self.runtimes.values():
            self._tasks.append(
                asyncio.create_task(self._probe_loop(rt), name=f"probe:{rt.cfg.name}")
            )
            if rt.cfg.passive_failure_ratio is not None:
                self._tasks.append(
                    asyncio.create_task(self._passive_loop(rt), name=f"passive:{rt.cfg.name}")
                )
        log.info("service.started", extra={"breakers": sorted(self.runtimes)})

    async def stop(self) -> None:
        """Stop probing, give Redis one short chance to take the last verdicts, close.

        Every step is bounded: a shutdown that hangs is worse than one that drops a write.
        """
        probers = [t for t in self._tasks if t.get_name() != "publisher"]
        await _cancel(probers)
        if self.publisher.up:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_STEP_TIMEOUT):
                    await self.publisher.wait_flushed()
        await _cancel(self._tasks)
        self._tasks.clear()
        for rt in self.runtimes.values():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_STEP_TIMEOUT):
                    await rt.probe.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_STEP_TIMEOUT):
                await self.store.aclose()
        log.info("service.stopped")

    @property
    def redis_up(self) -> bool:
        return self.publisher.up

    # ------------------------------------------------------------ reading

    def names(self) -> list[str]:
        return sorted(self.runtimes)

    def status(self, name: str) -> BreakerStatus:
        rt = self.runtimes[name]
        return BreakerStatus(
            verdict=core.verdict(rt.breaker, rt.policy, self.clock()),
            cfg=rt.cfg,
            last_probe=rt.last_probe,
            probes_total=rt.probes_total,
            probe_failures_total=rt.probe_failures_total,
            passive_failing=rt.passive_failing,
        )

    async def settle(self, within: float = 0.5) -> None:
        """Read-your-writes: let the publisher write what is queued before Redis is read back
        (a history read right after a force must see the force). Bounded; skipped while down."""
        if not self.publisher.up:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.publisher.wait_flushed()

    def recent_probes(self, name: str) -> list[ProbeResult]:
        """Oldest first, the last RECENT_PROBES results: the status page draws them."""
        return list(self.runtimes[name].recent_probes)

    def recent_events(self, name: str) -> list[dict[str, Any]]:
        """Newest first, from memory: what the API serves while Redis is away."""
        return list(reversed(self.runtimes[name].recent))

    # ------------------------------------------------------------ operating

    def force(self, name: str, state: State, ttl: float, actor: str, reason: str) -> Verdict:
        rt = self.runtimes[name]
        self._apply(rt, core.force(rt.breaker, rt.policy, state, ttl, actor, reason, self.clock()))
        return core.verdict(rt.breaker, rt.policy, self.clock())

    def release(self, name: str, actor: str) -> Verdict:
        rt = self.runtimes[name]
        self._apply(rt, core.release(rt.breaker, rt.policy, actor, self.clock()))
        return core.verdict(rt.breaker, rt.policy, self.clock())

    # ------------------------------------------------------------ loops

    async def _probe_loop(self, rt: Runtime) -> None:
        """Probe on a fixed cadence, staggered so many targets don't fire at once."""
        loop = asyncio.get_running_loop()
        interval = rt.cfg.interval
        next_at = loop.time() + self.rand() * min(interval, 1.0) * 0.5
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            result = await self._run_probe(rt)
            self._record_probe(rt, result)
            ok, reason = result.ok, result.reason
            if ok and rt.passive_failing:
                ok, reason = False, "passive"
            step = core.observe(rt.breaker, rt.policy, ok, reason, self.clock(), self.rand())
            self._apply(rt, step, always_publish=True)
            next_at += interval
            now = loop.time()
            if next_at < now:  # fell behind (suspended host?): skip, don't burst
                next_at = now + interval - (now - next_at) % interval

    async def _run_probe(self, rt: Runtime) -> ProbeResult:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that races with the probe finishing, and the loop would outlive stop().
        try:
            async with asyncio.timeout(rt.cfg.timeout + PROBE_GRACE):
                return await rt.probe.check()
        except TimeoutError:
            return ProbeResult(False, "timeout", None, self.clock(), "probe overran its timeout")
        except Exception as exc:  # a probe bug must not stop the breaker
            log.exception("probe.crashed", extra={"breaker": rt.cfg.name})
            return ProbeResult(False, "error", None, self.clock(), type(exc).__name__)

    def _record_probe(self, rt: Runtime, result: ProbeResult) -> None:
        rt.last_probe = result
        rt.recent_probes.append(result)
        rt.probes_total += 1
        probes, durations = self._probe_metrics[rt.cfg.name]
        probes.inc()
        if result.rtt is not None:
            durations.observe(result.rtt)
        if not result.ok:
            rt.probe_failures_total += 1
            self.metrics.probe_failures.labels(rt.cfg.name, result.reason).inc()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            now = self.clock()
            for rt in self.runtimes.values():
                deadline = core.next_change(rt.breaker, rt.policy)
                if deadline is None or now < deadline:
                    continue
                step = core.tick(rt.breaker, rt.policy, now)
                if step.events:
                    self._apply(rt, step)

    async def _passive_loop(self, rt: Runtime) -> None:
        """Proxies' own failure counts, read once per interval, as an extra failure signal."""
        ratio = rt.cfg.passive_failure_ratio
        assert ratio is not None
        while True:
            await asyncio.sleep(rt.cfg.interval)
            try:
                counts = await self.store.read_passive(rt.cfg.name)
            except StoreUnavailable:
                rt.passive_failing = False  # unknown is not a failure
                continue
            if counts is None:
                rt.passive_failing = False
                continue
            previous, rt.passive_seen = rt.passive_seen, counts
            if previous is None:
                continue
            forwarded = max(0, counts[0] - previous[0])
            failed = max(0, counts[1] - previous[1])
            rt.passive_failing = core.passive_failure(
                forwarded, failed, ratio, rt.cfg.passive_min_requests
            )

    async def _guard_runs_loop(self) -> None:
        """Re-export what short-lived `breaker guard` runs counted in Redis (docs/metrics.md)."""
        names = self.names()
        while True:
            with contextlib.suppress(StoreUnavailable):
                for name, counts in (await self.store.read_guard_runs(names)).items():
                    self.metrics.guard_runs.update(name, counts)
            await asyncio.sleep(GUARD_RUNS_INTERVAL)

    # ------------------------------------------------------------ plumbing

    def _apply(self, rt: Runtime, step: Step, always_publish: bool = False) -> None:
        rt.breaker = step.breaker
        for event in step.events:
            self._log_event(rt, event)
        if step.events or always_publish:
            self._publish(rt, step.events)

    def _publish(self, rt: Runtime, events: tuple[Event, ...]) -> None:
        v = core.verdict(rt.breaker, rt.policy, self.clock())
        if v != rt.last_verdict:
            self.metrics.set_state(
                v.name,
                v.state,
                v.admit,
                v.force is not None,
                v.epoch,
                since=v.since,
                force_until=v.force.until if v.force else 0.0,
            )
            rt.last_verdict = v
        self.publisher.submit(v, events)

    def _log_event(self, rt: Runtime, event: Event) -> None:
        data = event_dict(event)
        rt.recent.append(data)
        self.metrics.transitions.labels(event.name, event.kind, event.state.value).inc()
        extra = {k: v for k, v in data.items() if k not in ("event", "name", "contract")}
        log.info(f"breaker.{event.kind}", extra={"breaker": event.name, **extra})

    def _on_stale(self, name: str, stored_epoch: int) -> None:
        rt = self.runtimes[name]
        self._apply(rt, core.resync(rt.breaker, rt.policy, stored_epoch, self.clock()))

    async def _on_connect(self) -> None:
        """On the first connection, adopt epochs and live forces a previous sidecar left."""
        if self._restored:
            return
        for rt in self.runtimes.values():
            stored = await self.store.read_state(rt.cfg.name)
            if not stored:
                continue
            now = self.clock()
            with contextlib.suppress(ValueError):
                epoch = int(stored.get("epoch", "0"))
                if epoch >= rt.breaker.epoch:
                    self._apply(rt, core.resync(rt.breaker, rt.policy, epoch, now))
            stored_force = force_from_fields(stored)
            if stored_force is not None:
                self._apply(rt, core.restore_force(rt.breaker, rt.policy, stored_force, now))
        self._restored = True


def observer_id(settings: Settings) -> str:
    """The `[cluster] observer` id where that section exists, else this host's name."""
    cluster = getattr(settings, "cluster", None)
    observer = getattr(cluster, "observer", None)
    return str(observer) if observer else socket.gethostname()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    _, stuck = await asyncio.wait(tasks, timeout=STOP_STEP_TIMEOUT)
    for task in stuck:
        log.error(
            "service.task_stuck",
            extra={"task": task.get_name(), "stack": repr(task.get_stack(limit=5))},
        )
