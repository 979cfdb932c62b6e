"""The one place that wires probes → core → store, metrics and the API.

Everything here is orchestration: when to probe, what to hand to the pure core,
where its verdict goes. Decisions live in breaker.core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry

from breaker import core
from breaker._config import BreakerConfig, PoolConfig, Settings
from breaker._errors import StoreUnavailable
from breaker._metrics import Metrics
from breaker._supervisor import STOP_STEP_TIMEOUT, Supervisor, TaskHealth
from breaker.core import Breaker, Event, Policy, State, Step, Verdict
from breaker.probes import Probe, ProbeResult, SipResolver, make_probe
from breaker.store import (
    GUARD_OUTCOMES,
    ForceOp,
    PoolItem,
    PoolOutcome,
    Publisher,
    RedisStore,
    VoteItem,
    VoteOutcome,
    event_dict,
    probe_settings,
    settings_differences,
    stored_from_fields,
)

log = logging.getLogger("breaker.service")

TICK_INTERVAL = 0.1  # force expiry and ramp end are noticed within this
RECENT_EVENTS = 200  # per breaker, served by the API while Redis is away
RECENT_PROBES = 60  # per breaker, for the status page's RTT sparkline
PROBE_GRACE = 0.2
GUARD_RUNS_INTERVAL = 5.0  # how often `breaker guard` outcome counts are read from Redis
OFFSET_STEP = 0.5  # wall-minus-monotonic moves by more than this only when the wall clock steps
FLEET_DUE_SLACK = 0.01  # vote this long after the fleet's ramp end or force expiry is due
TWIN_SIGHTINGS = 2  # a restarted sidecar sees its predecessor's vote once; a twin keeps showing


def _outlives_two_misses(cfg: BreakerConfig) -> float:
    """The default for both TTLs: two missed refreshes survive, a dead writer shows soon."""
    return max(3 * cfg.interval, 2.0)


def state_ttl(settings: Settings, cfg: BreakerConfig) -> float:
    """The verdict hash's TTL: a dead sidecar's verdict expires."""
    return settings.redis.state_ttl or _outlives_two_misses(cfg)


def vote_ttl(settings: Settings, cfg: BreakerConfig) -> float:
    """A vote's expiry: a dead observer stops counting."""
    return settings.cluster.vote_ttl or _outlives_two_misses(cfg)


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
    rtts: deque[float] = field(default_factory=lambda: deque(maxlen=core.RTT_SAMPLES))
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    last_verdict: Verdict | None = None  # metrics are only touched when this changes
    published: Verdict | None = None  # the fleet verdict of the last vote (unix seconds)
    force_ops: deque[ForceOp] = field(default_factory=deque)  # taken here, not yet sent
    fleet_due: float | None = None  # monotonic: the fleet's ramp end or force expiry
    twin_sightings: int = 0  # votes that found another live instance under our observer id
    recent_probes: deque[ProbeResult] = field(default_factory=lambda: deque(maxlen=RECENT_PROBES))
    fingerprint: str = ""  # probe_settings(cfg), sent with every vote


@dataclass(frozen=True)
class BreakerSnapshot:
    """What the sidecar knows of one breaker now; the API renders it (the client's
    `breaker.client.BreakerStatus` is that rendering parsed back)."""

    verdict: Verdict
    cfg: BreakerConfig
    last_probe: ProbeResult | None
    probes_total: int
    probe_failures_total: int
    passive_failing: bool


@dataclass
class PoolRuntime:
    """A pool's verdict: as the pool script published it, and as derived here from the
    members' shown verdicts (what the API serves while Redis is away)."""

    cfg: PoolConfig
    verdict: Verdict  # derived here
    published: Verdict | None = None  # from the pool script (unix seconds)
    last_shown: Verdict | None = None  # metrics are only touched when this changes
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))


@dataclass(frozen=True)
class PoolSnapshot:
    """What the sidecar knows of one pool now, its members' verdicts included."""

    verdict: Verdict
    cfg: PoolConfig
    members: tuple[Verdict, ...]
    detection_bound: float  # the slowest member's


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        probe_factory: Callable[[BreakerConfig], Probe] | None = None,
        store: RedisStore | None = None,
    ) -> None:
        if probe_factory is None:
            resolver = SipResolver()  # one DNS cache for every target

            def probe_factory(cfg: BreakerConfig) -> Probe:
                return make_probe(cfg, resolver=resolver)

        self.settings = settings
        self.clock = clock  # every duration and deadline
        self.wall = wall  # display and the contract's timestamps only
        self._offset = wall() - clock()
        self.rand = rand
        self.metrics = Metrics()
        self.store = store or RedisStore(settings.redis)
        now = clock()
        self.runtimes: dict[str, Runtime] = {
            cfg.name: Runtime(
                cfg=cfg,
                policy=cfg.policy(),
                probe=probe_factory(cfg),
                breaker=core.new_breaker(cfg.name, now),
                fingerprint=probe_settings(cfg),
            )
            for cfg in settings.breakers
        }
        self.pools: dict[str, PoolRuntime] = {
            pool.name: PoolRuntime(pool, self._pool_verdict(pool, None, self.wall()))
            for pool in settings.pools
        }
        self._pools_of: dict[str, list[PoolRuntime]] = {}
        for prt in self.pools.values():
            for member in prt.cfg.members:
                self._pools_of.setdefault(member, []).append(prt)
        self.instance = secrets.token_hex(4)  # tells sidecars sharing one observer id apart
        self.publisher = Publisher(
            self.store,
            self.metrics,
            self.runtimes,
            voter=self._vote,
            on_voted=self._on_voted,
            pools=self._pool_items,
            on_pooled=self._on_pooled,
            on_connect=self._on_connect,
        )
        self._settings_warned: set[tuple[str, str]] = set()
        self._twin_warned = False
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
        self.supervisor = Supervisor(self.metrics, clock)
        self._restored = False
        self._bad_data: set[tuple[str, str]] = set()  # (breaker, what) already logged

    # ------------------------------------------------------------ pools

    def _member_verdicts(self, pool: PoolConfig) -> tuple[Verdict, ...]:
        """As consumers see them: times in unix seconds, like the pool's own."""
        return tuple(self._shown(self.runtimes[m]) for m in pool.members)

    def _pool_verdict(self, pool: PoolConfig, previous: Verdict | None, now: float) -> Verdict:
        members = self._member_verdicts(pool)
        return core.pool_verdict(pool.name, members, pool.healthy_needed, now, previous)

    def _derive_pools(self, member: str) -> None:
        """Re-derive here every pool holding `member`: the pool's verdict while Redis is away."""
        now = self.wall()  # a pool's verdict is derived from published ones: unix seconds
        for prt in self._pools_of.get(member, ()):
            prt.verdict = self._pool_verdict(prt.cfg, prt.verdict, now)
            self._show_pool(prt)

    def _pool_items(self, names: Sequence[str]) -> list[PoolItem]:
        """The pools holding any of these breakers, for the script to re-derive in Redis."""
        pools = {prt.cfg.name: prt for n in names for prt in self._pools_of.get(n, ())}
        return [
            PoolItem(
                name,
                prt.cfg.members,
                prt.cfg.healthy_needed,
                min(state_ttl(self.settings, self.runtimes[m].cfg) for m in prt.cfg.members),
            )
            for name, prt in sorted(pools.items())
        ]

    def _on_pooled(self, outcome: PoolOutcome) -> None:
        """The pool script's verdict; each sidecar logs the change it sees (the stream has
        it once, from whichever run made it)."""
        prt = self.pools[outcome.name]
        assert outcome.verdict is not None
        previous, prt.published = prt.published, outcome.verdict
        for event in core.pool_events(previous, prt.published):
            self._log_event_data(prt.recent, event)
        self._show_pool(prt)

    def _shown_pool(self, prt: PoolRuntime) -> Verdict:
        """The published pool verdict while Redis is up; else the one derived here."""
        if prt.published is not None and self.publisher.up:
            return prt.published
        epoch = prt.published.epoch if prt.published is not None else prt.verdict.epoch
        return replace(prt.verdict, epoch=epoch)

    def _show_pool(self, prt: PoolRuntime) -> None:
        v = self._shown_pool(prt)
        if v != prt.last_shown:
            self.metrics.show(v)
            prt.last_shown = v

    def pool_status(self, name: str) -> PoolSnapshot:
        prt = self.pools[name]
        return PoolSnapshot(
            verdict=self._shown_pool(prt),
            cfg=prt.cfg,
            members=self._member_verdicts(prt.cfg),
            detection_bound=max(self.runtimes[m].cfg.detection_bound for m in prt.cfg.members),
        )

    def verdict_of(self, name: str) -> Verdict:
        """A breaker's or a pool's current verdict."""
        if name in self.pools:
            return self._shown_pool(self.pools[name])
        return self.status(name).verdict

    def pool_of(self, member: str) -> str | None:
        """The first pool that lists this breaker as a member."""
        pools = self._pools_of.get(member)
        return pools[0].cfg.name if pools else None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # Nothing is written before the publisher has read what a previous sidecar left
        # (on_connect): a restart must not publish `closed` over a stored `open`.
        for rt in self.runtimes.values():
            self._publish(rt)
        self._spawn("publisher", self.publisher.run)
        self._spawn("tick", self._tick_loop)
        self._spawn("guard-runs", self._guard_runs_loop)
        for rt in self.runtimes.values():
            self._spawn(f"probe:{rt.cfg.name}", functools.partial(self._probe_loop, rt))
            if rt.cfg.passive_failure_ratio is not None:
                self._spawn(f"passive:{rt.cfg.name}", functools.partial(self._passive_loop, rt))
        log.info("service.started", extra={"breakers": sorted(self.runtimes)})

    def _spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self.supervisor.spawn(name, body)

    @property
    def tasks(self) -> dict[str, TaskHealth]:
        """Each background task's crash record."""
        return self.supervisor.health

    def failing_tasks(self) -> list[str]:
        """Tasks that crashed again and again lately: /readyz shows them."""
        return self.supervisor.failing()

    async def stop(self) -> None:
        """Stop probing, give Redis one short chance to take the last verdicts, close.

        Every step is bounded: a shutdown that hangs is worse than one that drops a write.
        """
        await self.supervisor.cancel(keep=frozenset({"publisher"}))
        if self.publisher.up:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_STEP_TIMEOUT):
                    await self.publisher.wait_flushed()
        await self.supervisor.cancel()
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

    def pool_names(self) -> list[str]:
        return sorted(self.pools)

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    def max_force_ttl(self) -> float:
        """The longest force any breaker accepts (the API documents it)."""
        return max((rt.policy.force_max_ttl for rt in self.runtimes.values()), default=86400.0)

    def status(self, name: str) -> BreakerSnapshot:
        rt = self.runtimes[name]
        return BreakerSnapshot(
            verdict=self._shown(rt),
            cfg=rt.cfg,
            last_probe=rt.last_probe,
            probes_total=rt.probes_total,
            probe_failures_total=rt.probe_failures_total,
            passive_failing=rt.passive_failing,
        )

    async def _settle(self, within: float = 0.5) -> None:
        """Read-your-writes: let the publisher write what is queued before Redis is read back
        (a history read right after a force must see the force). Bounded; skipped while down."""
        if not self.publisher.up:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self.publisher.wait_flushed()

    async def history(self, name: str, after: float | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, from Redis, after what is queued is written; StoreUnavailable if down."""
        await self._settle()
        return await self.store.history(name, after, limit)

    def recent_probes(self, name: str) -> list[ProbeResult]:
        """Oldest first, the last RECENT_PROBES results: the status page draws them."""
        return list(self.runtimes[name].recent_probes)

    def recent_events(self, name: str) -> list[dict[str, Any]]:
        """Newest first, from memory: what the API serves while Redis is away."""
        if name in self.pools:
            return list(reversed(self.pools[name].recent))
        return list(reversed(self.runtimes[name].recent))

    # ------------------------------------------------------------ operating

    def force(
        self, name: str, state: State, ttl: float, actor: str, reason: str
    ) -> BreakerSnapshot:
        """The breaker as shown right after the force: what the API answers with."""
        rt = self.runtimes[name]
        self._apply(rt, core.force(rt.breaker, rt.policy, state, ttl, actor, reason, self.clock()))
        self._send(rt, ForceOp("set", state, ttl, actor, reason.strip()))
        return self.status(name)

    def release(self, name: str, actor: str) -> BreakerSnapshot:
        """The breaker as shown right after the release: what the API answers with."""
        rt = self.runtimes[name]
        self._apply(rt, core.release(rt.breaker, rt.policy, actor, self.clock()))
        self._send(rt, ForceOp("release", None, 0.0, actor, ""))
        return self.status(name)

    # ------------------------------------------------------------ fleet

    def _send(self, rt: Runtime, op: ForceOp) -> None:
        rt.force_ops.append(op)
        self.publisher.mark_dirty(rt.cfg.name)

    def _shown(self, rt: Runtime) -> Verdict:
        """The fleet's verdict once Redis has it; else (or meanwhile) this observer's own."""
        if rt.published is not None and self.publisher.up and not rt.force_ops:
            return rt.published
        return self._verdict(rt)

    def _vote(self, name: str) -> VoteItem:
        rt = self.runtimes[name]
        cluster = self.settings.cluster
        return VoteItem(
            name=name,
            observer=cluster.observer,
            vote=rt.breaker.computed,
            reason=rt.breaker.reason,
            settings=rt.fingerprint,
            policy=rt.policy,
            quorum=str(cluster.quorum),
            vote_ttl=vote_ttl(self.settings, rt.cfg),
            ttl=state_ttl(self.settings, rt.cfg),
            instance=self.instance,
            force_op=rt.force_ops[0] if rt.force_ops else None,
        )

    def _on_voted(self, item: VoteItem, outcome: VoteOutcome) -> None:
        rt = self.runtimes[item.name]
        if item.force_op is not None and rt.force_ops and rt.force_ops[0] is item.force_op:
            rt.force_ops.popleft()
            if rt.force_ops:
                self.publisher.mark_dirty(item.name)
        assert outcome.verdict is not None
        rt.published = outcome.verdict
        rt.fleet_due = None if outcome.due is None else self.clock() + outcome.due + FLEET_DUE_SLACK
        self._show(rt)
        if outcome.twin:
            self._twin_seen(rt)
        if outcome.other:
            observer, _, theirs = outcome.other.partition("|")
            if (item.name, observer) not in self._settings_warned:
                self._settings_warned.add((item.name, observer))
                log.warning(
                    "fleet.probe_settings_differ",
                    extra={
                        "breaker": item.name,
                        "observer": observer,
                        "differences": "; ".join(settings_differences(item.settings, theirs)),
                        "hint": "give every sidecar the same settings for this breaker",
                    },
                )

    def _twin_seen(self, rt: Runtime) -> None:
        """Two live sidecars vote under one observer id (two on one host, both defaulting
        to the host name): their votes overwrite each other. Say so once, loudly."""
        rt.twin_sightings += 1
        if rt.twin_sightings < TWIN_SIGHTINGS or self._twin_warned:
            return
        self._twin_warned = True
        log.warning(
            "fleet.observer_id_shared",
            extra={
                "breaker": rt.cfg.name,
                "observer": self.settings.cluster.observer,
                "hint": "another running sidecar votes as this observer (several sidecars on "
                "one host share its name): give each its own [cluster] observer, or set "
                "BREAKER_CLUSTER__OBSERVER",
            },
        )

    # ------------------------------------------------------------ loops

    async def _probe_loop(self, rt: Runtime) -> None:
        """Probe on the core's schedule (`interval`, `fast_interval` while confirming a
        failure), staggered so many targets don't fire at once."""
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.rand() * min(rt.cfg.interval, 1.0) * 0.5
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            result = await self._run_probe(rt)
            self._record_probe(rt, result)
            ok, reason = result.ok, result.reason
            if ok and rt.passive_failing:
                ok, reason = False, "passive"
            step = core.observe(rt.breaker, rt.policy, ok, reason, self.clock(), self.rand())
            self._apply(rt, step, always_publish=True)
            # from the slot, not the wake-up: the steady cadence stays exactly 1/interval
            next_at = core.next_probe_at(next_at, loop.time(), rt.breaker, rt.policy)

    async def _run_probe(self, rt: Runtime) -> ProbeResult:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that races with the probe finishing, and the loop would outlive stop().
        cfg = rt.cfg
        wait = cfg.timeout
        if cfg.adaptive_timeout:
            wait = core.adaptive_timeout(rt.rtts, cfg.timeout, cfg.timeout_floor)
        adaptive = wait < cfg.timeout  # else the probe's own timeout, with a grace
        try:
            async with asyncio.timeout(wait if adaptive else cfg.timeout + PROBE_GRACE):
                return await rt.probe.check()
        except TimeoutError:
            detail = (
                f"no answer within {wait:.3f} s (adaptive timeout)"
                if adaptive
                else "probe overran its timeout"
            )
            return ProbeResult(False, "timeout", None, self.wall(), detail)
        except Exception as exc:  # a probe bug must not stop the breaker
            log.exception("probe.crashed", extra={"breaker": rt.cfg.name})
            return ProbeResult(False, "error", None, self.wall(), type(exc).__name__)

    def _record_probe(self, rt: Runtime, result: ProbeResult) -> None:
        rt.last_probe = result
        rt.recent_probes.append(result)
        rt.probes_total += 1
        probes, durations = self._probe_metrics[rt.cfg.name]
        probes.inc()
        if result.rtt is not None:
            durations.observe(result.rtt)
            rt.rtts.append(result.rtt)
        if not result.ok:
            rt.probe_failures_total += 1
            self.metrics.probe_failures.labels(rt.cfg.name, result.reason).inc()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            now = self.clock()
            for rt in self.runtimes.values():
                if rt.fleet_due is not None and now >= rt.fleet_due:
                    rt.fleet_due = None  # the fleet's ramp ends or its force runs out: vote now
                    self.publisher.mark_dirty(rt.cfg.name)
                deadline = core.next_change(rt.breaker, rt.policy)
                if deadline is None or now < deadline:
                    continue
                step = core.tick(rt.breaker, rt.policy, now)
                if step.events:
                    self._apply(rt, step)

    async def _passive_loop(self, rt: Runtime) -> None:
        """Proxies' own failure counts as an extra failure signal.

        Read several times per probe gap; a window is judged as soon as it holds
        `passive_min_requests` (core.passive_window_closed), and a failing one counts
        as a failed observation at once, so live traffic can open the breaker
        between probes.

        Unknown is not a failure: Redis away, garbage in the key or a crash of this loop
        all clear `passive_failing`, so nothing here can latch a breaker open.
        """
        try:
            await self._passive_reads(rt)
        finally:
            rt.passive_failing = False
            rt.passive_seen = None

    async def _passive_reads(self, rt: Runtime) -> None:
        ratio = rt.cfg.passive_failure_ratio
        assert ratio is not None
        loop = asyncio.get_running_loop()
        window_start = loop.time()
        while True:
            await asyncio.sleep(core.passive_read_period(rt.policy))
            try:
                counts = await self.store.read_passive(rt.cfg.name)
            except StoreUnavailable:
                rt.passive_failing = False
                continue
            except ValueError as exc:
                self._bad_data_once(rt.cfg.name, "passive", str(exc))
                rt.passive_failing, rt.passive_seen = False, None
                continue
            if counts is None:
                rt.passive_failing = False
                continue
            previous, now = rt.passive_seen, loop.time()
            if previous is None:
                rt.passive_seen, window_start = counts, now
                continue
            forwarded = max(0, counts[0] - previous[0])
            failed = max(0, counts[1] - previous[1])
            if not core.passive_window_closed(
                forwarded, now - window_start, rt.cfg.passive_min_requests, rt.cfg.interval
            ):
                continue
            rt.passive_seen, window_start = counts, now
            rt.passive_failing = core.passive_failure(
                forwarded, failed, ratio, rt.cfg.passive_min_requests
            )
            if rt.passive_failing:
                step = core.observe(
                    rt.breaker, rt.policy, False, "passive", self.clock(), self.rand()
                )
                self._apply(rt, step, always_publish=True)

    async def _guard_runs_loop(self) -> None:
        """Re-export what short-lived `breaker guard` runs counted in Redis (docs/metrics.md)."""
        names = self.names()
        while True:
            with contextlib.suppress(StoreUnavailable):
                for name, counts in (await self.store.read_guard_runs(names)).items():
                    self.metrics.guard_runs.update(name, counts)
            await asyncio.sleep(GUARD_RUNS_INTERVAL)

    # ------------------------------------------------------------ plumbing

    def _wall_offset(self) -> float:
        """Wall minus monotonic, re-measured only when it moved (a step, not jitter), so
        an unchanged verdict converts to the same unix times and stays a cheap refresh."""
        offset = self.wall() - self.clock()
        if abs(offset - self._offset) > OFFSET_STEP:
            self._offset = offset
        return self._offset

    def _verdict(self, rt: Runtime) -> Verdict:
        """The verdict as consumers see it: times in unix seconds."""
        v = core.verdict(rt.breaker, rt.policy, self.clock())
        return core.verdict_on_wall(v, self._wall_offset())

    def _apply(self, rt: Runtime, step: Step, always_publish: bool = False) -> None:
        rt.breaker = step.breaker
        offset = self._wall_offset()
        events = tuple(core.event_on_wall(e, offset) for e in step.events)
        for event in events:
            self._log_event(rt, event)
        if events or always_publish:
            self._publish(rt)

    def _publish(self, rt: Runtime) -> None:
        """Vote (the fleet script publishes and audits); meanwhile show our own view."""
        self.publisher.mark_dirty(rt.cfg.name)
        self._show(rt)

    def _show(self, rt: Runtime) -> None:
        """Gauges and pools follow the verdict shown: the fleet's, or ours while Redis is away."""
        v = self._shown(rt)
        if v == rt.last_verdict:
            return
        self.metrics.show(v)
        rt.last_verdict = v
        if rt.cfg.name in self._pools_of:
            self._derive_pools(rt.cfg.name)

    def _log_event(self, rt: Runtime, event: Event) -> None:
        self._log_event_data(rt.recent, event)

    def _log_event_data(self, recent: deque[dict[str, Any]], event: Event) -> None:
        data = event_dict(event)
        recent.append(data)
        self.metrics.transitions.labels(event.name, event.kind, event.state.value).inc()
        extra = {k: v for k, v in data.items() if k not in ("event", "name", "contract")}
        log.info(f"breaker.{event.kind}", extra={"breaker": event.name, **extra})

    def _bad_data_once(self, name: str, what: str, detail: str) -> None:
        if (name, what) not in self._bad_data:
            self._bad_data.add((name, what))
            log.warning(
                "store.bad_data_ignored", extra={"breaker": name, "key": what, "detail": detail}
            )

    async def _on_connect(self) -> None:
        """On the first connection, resume from what a previous sidecar left: the epoch,
        live forces, and the computed state (see core.restore)."""
        if self._restored:
            return
        for rt in self.runtimes.values():
            fields = await self.store.read_stored(rt.cfg.name)
            if not fields:
                continue
            stored = stored_from_fields(fields, self._wall_offset())
            if stored is None:
                self._bad_data_once(rt.cfg.name, "stored verdict", "unreadable fields")
                continue
            self._apply(rt, core.restore(rt.breaker, rt.policy, stored, self.clock()), True)
        forgotten = await self.store.forget_unconfigured(set(self.runtimes))
        if forgotten:
            log.info("store.forgot_unconfigured", extra={"breakers": forgotten})
        self._restored = True


def observer_id(settings: Settings) -> str:
    """The `[cluster] observer` id: this host's name unless configured."""
    return settings.cluster.observer
