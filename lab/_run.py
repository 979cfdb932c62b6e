"""One run of the incident timeline, baseline or protected, with real processes on loopback.

    Redis ── sidecar (probes the presence server directly)
                │ verdict
    vm-presence ──UDP──> Kamailio proxy ──> counting relay ──> Kamailio presence server
    canary, calls ─────> (kamailio.cfg)      (lab.wire)   (SIGSTOP = lock-up)
                              └── calls ──> far-end UA (lab.wire)

Every DNS lookup (the proxy's SRV + A per call to the carrier domain, vm-presence's
NAPTR + SRV + A per PUBLISH) goes to dnsmasq through a policer capped at `dns_cap`
queries/s (lab.resolver); the proxy sees it as its only nameserver through a
resolv.conf bind-mounted in a mount namespace of its own.

baseline: the proxy started with WITHOUT_BREAKER; vm-presence started bare every cycle.
protected: the proxy with the breaker route (and BREAKER_PRESENCE_MAX_RATE = capacity unless
disabled); every cycle runs `breaker guard presence --lock vm-presence -- vm-presence …`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from breaker.store import EVENTS_CHANNEL
from lab._common import run_in, sleep_until, tail_lines
from lab._dns import CARRIER_DOMAIN, PRESENCE_SERVICE, dnsmasq_argv, resolv_conf
from lab._params import LabParams, Mode, Phase
from lab._record import CallRecord, CanaryResult, Cycle, RunRecord, Sample
from lab._sip import SipUac, UacCounters, publish_mwi, short_call
from testbed.cpu import group_cpu_seconds
from testbed.kamailio import PROXY_CFG, Define, Kamailio, presence_server, proxy_defines
from testbed.procs import LOOPBACK, Child, LabError, await_ready, free_port, python_module
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.verdicts import parse_verdict
from testbed.waiting import wait_until

Tick = Callable[[Mode, float, Phase], None]

BREAKER_NAME = "presence"
JOB_LOCK = "vm-presence"
TCP_LIMIT = "maximum number of connections exceeded"  # Kamailio's log line at the limit
CALL_GIVE_UP = 8.0  # a background call transaction is abandoned after this (Timer B is 32 s)
_PROBES = re.compile(r'^breaker_probes_total\{name="presence"\} ([0-9.e+]+)$', re.MULTILINE)

GUARD_OUTCOMES = {
    0: "ran",
    1: "ran (some mailboxes gave up)",
    69: "refused: state unknown",
    73: "refused: locked (previous instance running)",
    75: "refused: breaker open",
    79: "stopped: breaker opened",
    80: "stopped: state unknown or lock lost",
}
JOB_OUTCOMES = {0: "finished", 1: "finished (some mailboxes gave up)"}


def guard_argv() -> list[str]:
    """`breaker guard …`: the console script next to this Python, or `python -m breaker`."""
    script = Path(sys.executable).with_name("breaker")
    return [str(script)] if script.exists() else python_module("breaker")


class Environment:
    """The processes of one run, started in dependency order and always stopped."""

    def __init__(self, mode: Mode, params: LabParams, workdir: Path) -> None:
        self.mode = mode
        self.params = params
        self.workdir = workdir
        ports: set[int] = set()
        while len(ports) < 8:
            ports.add(free_port())
        (
            self.pbx_port,
            self.dnsmasq_port,
            self.redis_port,
            self.presence_port,
            self.relay_port,
            self.far_end_port,
            self.proxy_port,
            self.api_port,
        ) = sorted(ports)
        self.redis = Redis(workdir / "redis", self.redis_port)
        self.presence = presence_server(
            workdir / "presence", self.presence_port, params.presence_children
        )
        self.relay_stats = workdir / "relay.json"
        self.relay_events = workdir / "relay-events.json"
        self.wire: Child | None = None
        self.sidecar = Sidecar(
            workdir / "sidecar",
            sidecar_toml(
                redis_url=self.redis.url,
                api_port=self.api_port,
                breakers=[
                    {
                        "name": BREAKER_NAME,
                        "target": f"sip:{LOOPBACK}:{self.presence_port};transport=udp",
                        "method": params.probe_method,
                        "interval": params.interval,
                        "timeout": params.timeout,
                        "fall": params.fall,
                        "rise": params.rise,
                        "slow_start": params.slow_start,
                    }
                ],
            ),
            self.api_port,
        )
        extra: dict[str, Define] = {"PRESENCE_FR_TIMER": params.fr_timer_ms}
        if mode == "baseline":
            extra["WITHOUT_BREAKER"] = True
        else:
            extra["BREAKER_POLL_MS"] = params.poll_ms
            if params.rate_cap:
                extra["BREAKER_PRESENCE_MAX_RATE"] = params.capacity
        extra["CHILDREN"] = params.proxy_children
        if params.sockets:
            extra["WITH_TCP"] = True
            extra["LISTEN_TCP"] = f"tcp:{LOOPBACK}:{self.proxy_port}"
            extra["TCP_MAX_CONNECTIONS"] = params.tcp_max_connections
        self.dns_stats = workdir / "dns.json"
        self.dns_events = workdir / "dns-events.json"
        self.dnsmasq: Child | None = None
        self.resolver: Child | None = None
        self.nameserver: str | None = None
        self.resolv_conf = workdir / "proxy-resolv.conf"
        wrapper: list[str] = []
        if params.dns:
            extra["DNS_CACHE"] = "off"  # every call resolves the carrier: SRV, then A
            extra["DNS_RETR_TIME"] = params.dns_timeout
            extra["DNS_RETR_NO"] = params.dns_tries
            # a loopback answer takes < 1 ms: a lookup this slow waited for a lost query
            extra["DNS_SLOW_QUERY_MS"] = int(params.dns_timeout * 900)
            wrapper = [
                *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
                'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                str(self.resolv_conf),
            ]
        self.proxy = Kamailio(
            PROXY_CFG,
            workdir / "proxy",
            self.proxy_port,
            proxy_defines(self.proxy_port, self.relay_port, self.redis_port, **extra),
            name="proxy",
            wrapper=wrapper,
        )
        self.instances_dir = workdir / "instances"

    @property
    def call_target(self) -> tuple[str, int] | str:
        """Where background calls go: the carrier's domain (resolved by the proxy) or an address."""
        return CARRIER_DOMAIN if self.params.dns else (LOOPBACK, self.far_end_port)

    def target_of(self, n: int) -> tuple[str, tuple[str, int] | str]:
        """Call n's kind and target: with sockets modelled, every other call is inbound."""
        if self.params.sockets and n % 2 == 1:
            return "inbound", f"{LOOPBACK}:{self.pbx_port};transport=tcp"
        return "outbound", self.call_target

    def start_dns(self) -> None:
        self.dnsmasq = Child(
            dnsmasq_argv(self.dnsmasq_port, self.proxy_port, self.far_end_port),
            self.workdir / "dnsmasq.log",
        )
        self.resolver = Child(
            python_module(
                "lab.resolver",
                "--upstream",
                str(self.dnsmasq_port),
                "--cap",
                str(self.params.dns_cap),
                "--stats",
                str(self.dns_stats),
                "--events",
                str(self.dns_events),
            ),
            self.workdir / "resolver.log",
        )
        resolver = self.resolver
        await_ready(resolver, self.dns_stats.exists, 10, "the lab resolver")
        self.nameserver = str(json.loads(self.dns_stats.read_text())["address"])
        self.resolv_conf.write_text(
            resolv_conf(self.nameserver, self.params.dns_timeout, self.params.dns_tries)
        )
        dnsmasq = self.dnsmasq
        await_ready(dnsmasq, lambda: "started" in dnsmasq.output(), 10, "dnsmasq")

    def start(self) -> None:
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        if self.params.dns:
            self.start_dns()
        self.wire = Child(
            python_module(
                "lab.wire",
                "--listen",
                str(self.relay_port),
                "--upstream",
                str(self.presence_port),
                "--far-end",
                str(self.far_end_port),
                "--pbx",
                str(self.pbx_port if self.params.sockets else 0),
                "--stats",
                str(self.relay_stats),
                "--events",
                str(self.relay_events),
            ),
            self.workdir / "wire.log",
        )
        self.presence.start()
        self.sidecar.start()
        self.proxy.start()
        wait_until(self.relay_stats.exists, 10, "the relay to listen")
        if self.mode == "protected":
            wait_until(
                lambda: "state=closed" in self.proxy.log.read_text(errors="replace"),
                10,
                "the proxy to read the breaker's first verdict",
            )

    def stop(self) -> None:
        for stop in (
            self.proxy.stop,
            self.sidecar.stop,
            self.stop_wire,
            self.presence.stop,
            self.stop_dns,
        ):
            with contextlib.suppress(Exception):
                stop()
        self.redis.stop()

    def stop_wire(self) -> None:
        if self.wire is not None:
            self.wire.stop()
            self.wire = None

    def stop_dns(self) -> None:
        """The resolver writes its events on exit."""
        for child in (self.resolver, self.dnsmasq):
            if child is not None:
                child.stop()
        self.resolver = self.dnsmasq = None

    def job_argv(self, number: int, deadline: float) -> list[str]:
        p = self.params
        job = python_module(
            "lab.vm_presence",
            "--proxy",
            str(self.proxy_port),
            "--mailboxes",
            str(p.mailboxes),
            "--rate",
            f"{p.rate:g}",
            "--window",
            str(p.window),
            "--max-attempts",
            str(p.max_attempts),
            "--retry-delay",
            f"{p.retry_delay:g}",
            "--deadline",
            f"{deadline:.1f}",
            "--status",
            str(self.instances_dir / f"vm-presence-{number:03d}.json"),
        )
        if p.sockets:
            job += ["--transport", "tcp"]
        if self.nameserver is not None:
            job += ["--resolver", self.nameserver, "--service", PRESENCE_SERVICE]
            job += ["--dns-timeout", f"{p.dns_timeout:g}", "--dns-tries", str(p.dns_tries)]
        if self.mode == "baseline":
            return job
        guard = [*guard_argv(), "guard", BREAKER_NAME, "--lock", JOB_LOCK]
        guard += ["--grace", f"{p.guard_grace:g}"]
        return [*guard, "--", *job]


# ---------------------------------------------------------------- observing


def _read_statuses(directory: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _job_counts(directory: Path) -> tuple[int, int, int, int]:
    """(running instances, retransmissions sent, 503s received, DNS tries timed out),
    summed over every instance."""
    running = retrans = got_503 = dns_timeouts = 0
    for status in _read_statuses(directory):
        if status.get("state") == "running" and _pid_alive(int(status.get("pid", 0))):
            running += 1
        retrans += int(status.get("retransmissions", 0))
        got_503 += int(status.get("finals", {}).get("503", 0))
        dns_timeouts += int(status.get("dns_timeouts", 0))
    return running, retrans, got_503, dns_timeouts


class _Recorder:
    """Once a second: the job instances, the proxy's counters and CPU, the sidecar's verdict."""

    def __init__(
        self,
        env: Environment,
        record: RunRecord,
        http: httpx.AsyncClient,
        clients: list[UacCounters],
    ) -> None:
        self.env = env
        self.record = record
        self.http = http
        self.clients = clients

    async def sample(self, t: float) -> Sample:
        jobs, stats, cpu, verdict = await asyncio.gather(
            asyncio.to_thread(_job_counts, self.env.instances_dir),
            asyncio.to_thread(self.env.proxy.stats),
            asyncio.to_thread(group_cpu_seconds, self.env.proxy.pid),
            self._verdict(),
        )
        running, job_retrans, job_503, job_dns_timeouts = jobs
        sample = Sample(
            t=t,
            client_retransmissions=job_retrans + sum(c.retransmissions for c in self.clients),
            generator_503=job_503,
            proxy_5xx_sent=stats.get("sl:5xx_replies"),
            proxy_cpu_seconds=cpu,
            proxy_shm_bytes=stats.get("shmem:real_used_size"),
            proxy_transactions=stats.get("tmx:inuse_transactions"),
            breaker_state=verdict[0] if verdict else None,
            admit_percent=verdict[1] if verdict else None,
            vm_presence_running=running,
            job_dns_timeouts=job_dns_timeouts,
            proxy_dns_failed=stats.get("dns:failed_dns_request"),
            proxy_dns_slow=stats.get("dns:slow_dns_request"),
            proxy_tcp_open=stats.get("tcp:current_opened_connections"),
            proxy_tcp_refused=stats.get("tcp:local_reject"),
        )
        self.record.samples.append(sample)
        return sample

    async def _verdict(self) -> tuple[str, int] | None:
        try:
            response = await self.http.get(f"/v1/breakers/{BREAKER_NAME}")
            data = response.json()
            return str(data["state"]), int(data["admit"])
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def probes_total(self) -> float | None:
        try:
            text = (await self.http.get("/metrics")).text
        except httpx.HTTPError:
            return None
        match = _PROBES.search(text)
        return float(match.group(1)) if match else None


# ---------------------------------------------------------------- driving


async def _every(
    gap: float, start: float, end: float, make: Callable[[int], Coroutine[Any, Any, None]]
) -> set[asyncio.Task[None]]:
    """Start make(n) every `gap` seconds of loop time in [start, end); return the tasks."""
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while start + n * gap < end:
        await sleep_until(start + n * gap)
        task = asyncio.create_task(make(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    return tasks


def _on_verdict_line(record: RunRecord) -> Callable[[float, str], None]:
    """Timestamp Kamailio's `event=breaker.verdict` lines as they appear."""

    def on_line(now: float, line: str) -> None:
        verdict = parse_verdict(line)
        if verdict is not None:
            record.proxy_verdicts.append((now, verdict["state"], int(verdict["admit"])))

    return on_line


async def _breaker_events(redis_url: str, record: RunRecord, ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(EVENTS_CHANNEL)
        ready.set()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            with contextlib.suppress(ValueError, TypeError):
                event = json.loads(message["data"])
                event["received_at"] = time.time()
                record.breaker_events.append(event)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await client.aclose()


def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


async def run_timeline(
    mode: Mode, params: LabParams, workdir: Path, tick: Tick | None = None
) -> RunRecord:
    """Start everything, play normal → lock-up → restart, stop everything; return observations.

    SIGTERM (like Ctrl-C) cancels the run; every process is stopped on the way out.
    """
    await asyncio.to_thread(_fresh, workdir)
    env = Environment(mode, params, workdir)
    try:
        return await run_in(env, lambda: _drive(env, params, tick))
    finally:
        env.relay_events.unlink(missing_ok=True)


async def _drive(env: Environment, params: LabParams, tick: Tick | None) -> RunRecord:
    record = RunRecord(mode=env.mode)
    loop = asyncio.get_running_loop()
    proxy = (LOOPBACK, env.proxy_port)
    canary_counters, call_counters = UacCounters(), UacCounters()
    canary_uac = await SipUac.open(proxy, canary_counters)
    call_uac = await SipUac.open(proxy, call_counters)
    http = httpx.AsyncClient(base_url=env.sidecar.base_url, timeout=0.5)
    recorder = _Recorder(env, record, http, [canary_counters, call_counters])
    subscribed = asyncio.Event()
    background = [
        asyncio.create_task(_breaker_events(env.redis.url, record, subscribed)),
        asyncio.create_task(tail_lines(env.proxy.log, _on_verdict_line(record))),
    ]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3):
            await subscribed.wait()
    jobs: list[tuple[int, float, Child]] = []
    start = loop.time()
    record.t0 = time.time()
    end = start + params.duration

    async def canary(n: int) -> None:
        outcome = await publish_mwi(canary_uac, f"canary{n % 100}", LOOPBACK, agent="canary")
        record.canary.append(CanaryResult(outcome.sent_at, outcome.done_at, outcome.status))

    async def call(n: int) -> None:
        kind, target = env.target_of(n)
        started = time.time()
        try:
            result = await short_call(
                call_uac, f"call{n}", target, params.call_deadline, CALL_GIVE_UP
            )
        except asyncio.CancelledError:  # still unanswered when the run ended: it failed
            record.calls.append(CallRecord(started, False, None, None, kind))
            raise
        record.calls.append(
            CallRecord(
                result.started_at, result.ok_within, result.setup_status, result.setup_time, kind
            )
        )

    async def spawn(n: int) -> None:
        remaining = end - loop.time()
        argv = env.job_argv(n, deadline=remaining + 2.0)
        child = Child(
            argv,
            env.instances_dir / f"vm-presence-{n:03d}.log",
            env={"BREAKER_REDIS_URL": env.redis.url, "PYTHONUNBUFFERED": "1"},
        )
        jobs.append((n, loop.time() - start, child))

    async def sampler() -> None:
        second = 0
        while start + second <= end + 1e-3:
            await sleep_until(start + second)
            await recorder.sample(float(second))
            if tick is not None:
                tick(env.mode, float(second), params.phase_at(second))
            second += 1

    loops = [
        asyncio.create_task(_every(1 / params.canary_per_second, start, end, canary)),
        asyncio.create_task(_every(1 / params.calls_per_second, start, end, call)),
        asyncio.create_task(_every(params.cycle, start, end - 0.5, spawn)),
    ]
    sampling = asyncio.create_task(sampler())
    pending: set[asyncio.Task[None]] = set()
    try:
        await sleep_until(start + params.normal)
        probes_before = await recorder.probes_total()
        env.presence.freeze()
        record.freeze_at = time.time()
        await sleep_until(start + params.normal + params.freeze)
        probes_after = await recorder.probes_total()
        env.presence.thaw()
        record.thaw_at = time.time()
        if probes_before is not None and probes_after is not None:
            record.probes_during_lockup = int(probes_after - probes_before)
        for loop_task in loops:
            pending |= await loop_task  # each returns once `end` has passed
        await sampling
        record.end_at = record.t0 + params.duration
    finally:
        for loop_task in loops:
            loop_task.cancel()
        sampling.cancel()
        await _stop_jobs(jobs, record, env.mode)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.gather(*pending, return_exceptions=True)
        for leftover in (*pending, *background):
            leftover.cancel()
        await asyncio.gather(*pending, *background, *loops, sampling, return_exceptions=True)
        canary_uac.close()
        call_uac.close()
        await http.aclose()
    for status in _read_statuses(env.instances_dir):
        if status.get("first_503_at"):
            record.first_503_at.append(float(status["first_503_at"]))
    if canary_counters.first_503_at is not None:
        record.first_503_at.append(canary_counters.first_503_at)
    if env.params.sockets:  # outgoing connections refused at the limit: only the log says so
        log = await asyncio.to_thread(env.proxy.log.read_text, errors="replace")
        record.tcp_send_refused = sum(
            1 for line in log.splitlines() if "tcp_send(" in line and TCP_LIMIT in line
        )
    await asyncio.to_thread(env.stop_wire)  # the relay writes its events on exit
    await asyncio.to_thread(_load_relay, env, record)
    if env.params.dns:
        await asyncio.to_thread(env.stop_dns)
        await asyncio.to_thread(_load_dns, env, record)
    return record


def _stop_all(children: list[Child]) -> None:
    for child in children:
        child.stop(timeout=4.0)


async def _stop_jobs(jobs: list[tuple[int, float, Child]], record: RunRecord, mode: Mode) -> None:
    still = [child.alive() for _, _, child in jobs]
    for _, _, child in jobs:
        if child.alive():
            child.signal(signal.SIGTERM)
    await asyncio.to_thread(_stop_all, [child for _, _, child in jobs])
    outcomes = GUARD_OUTCOMES if mode == "protected" else JOB_OUTCOMES
    for (number, at, child), running in zip(jobs, still, strict=True):
        code = child.popen.returncode
        if running:
            outcome = "still running at the end (stopped)"
        else:
            outcome = outcomes.get(code if code is not None else -1, f"exit {code}")
        record.cycles.append(Cycle(number, round(at, 3), code, outcome))


def _events(path: Path, what: str, log: Path) -> dict[str, Any]:
    """The event file a helper process writes on exit."""
    try:
        events: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{what} left no event file ({exc}); see {log}") from None
    return events


def _load_relay(env: Environment, record: RunRecord) -> None:
    events = _events(env.relay_events, "the relay", env.workdir / "wire.log")
    record.relay_requests = sorted(events["requests"])
    record.relay_retransmissions = sorted(events["retransmissions"])
    record.relay_responses = sorted(events["responses"])


def _load_dns(env: Environment, record: RunRecord) -> None:
    events = _events(env.dns_events, "the lab resolver", env.workdir / "resolver.log")
    record.dns_queries = {c: sorted(v) for c, v in events["queries"].items()}
    record.dns_dropped = {c: sorted(v) for c, v in events["dropped"].items()}
