"""`python -m lab --scenario pool`: three presence servers behind the proxy, one locks up.

Each timeline runs three real presence servers (presence-server.cfg, each naming
itself in its Server header), a counting relay in front of each (lab.wire: what
reaches a member even while it is frozen), a proxy and the subscribers' load:
every subscriber (an MWI mailbox) PUBLISHes every `period` seconds through the
proxy, and dispatcher's hash over the To URI makes one member its home. After
`normal` seconds the middle member is frozen (SIGSTOP, as in the incident
scenario), `freeze` seconds later it is thawed (SIGCONT).

- baseline: lab/dispatcher-proxy.cfg, Kamailio's dispatcher as an operator
  typically runs it (pings every 10 s, down after 3 failed pings, tm's default
  30 s fr_timer, the next member on a timeout), no breaker;
- protected: kamailio-config/kamailio.cfg with WITH_PRESENCE_POOL, a sidecar
  with one breaker per member and the `[[pools]]` table, Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab._common import run_in, sleep_until, tail_lines
from lab._params import Mode, TimelineParams
from lab._record import TimelineRecord
from lab._sip import SipUac, publish_mwi
from testbed.kamailio import PROXY_CFG, Kamailio, presence_server, proxy_defines, quoted
from testbed.procs import LOOPBACK, Child, LabError, free_port, python_module
from testbed.redis import Redis
from testbed.sidecar import Sidecar, sidecar_toml
from testbed.verdicts import parse_verdict
from testbed.waiting import wait_until

DISPATCHER_PROXY_CFG = Path(__file__).resolve().parent / "dispatcher-proxy.cfg"
MEMBERS = ("presence-a", "presence-b", "presence-c")
FROZEN = "presence-b"
POOL = "presence"
DOMAIN = "pool.test"
TM_FR_TIMER_S = 30.0  # tm's default fr_timer: the baseline proxy sets none

# the proxy's log lines that say a member left or rejoined the rotation
_DS_EVENT = re.compile(r"event=ds\.(down|up) uri=(\S+)")

Tick = Callable[[Mode, float, str], None]


@dataclass(frozen=True)
class PoolParams(TimelineParams):
    """Everything one pool run depends on; recorded in results.json."""

    freeze: float = 60.0  # the member's lock-up (SIGSTOP)
    # the load: every subscriber PUBLISHes its MWI state every `period` s, spread evenly
    subscribers: int = 225
    period: float = 3.0  # 75 PUBLISH/s in all, about 25/s per member
    # a member's design limit (requests/s); the protected proxy's per-member
    # BREAKER_PRESENCE_MAX_RATE. A pool is sized so that a member can take a failed
    # neighbour's subscribers (dispatcher moves all of them to one member): 2 x the
    # normal ~25/s per member, plus half again
    capacity: int = 80
    publish_deadline: float = 2.0  # a PUBLISH counts as on time when answered 200 within this
    burst_window: float = 10.0  # the recovery burst: the peak in this long after the restart
    # baseline: Kamailio's dispatcher as operators configure it
    ds_ping_interval: int = 10
    ds_probing_threshold: int = 3
    # protected: the breaker, one per member, as breaker.example.toml
    interval: float = 0.5
    timeout: float = 0.25
    fall: int = 3
    rise: int = 2
    slow_start: float = 10.0
    poll_ms: int = 300
    proxy_children: int = 2
    presence_children: int = 2

    @classmethod
    def quick(cls) -> PoolParams:
        """≤ ~90 s for both runs: for tests and a first look."""
        return cls(
            normal=5.0, freeze=15.0, settle=10.0, subscribers=150, period=2.5, slow_start=4.0
        )


def subscribers(count: int) -> list[str]:
    """Numeric mailboxes, as bench/pool.py uses (dispatcher's hash spreads them ~1/3 each)."""
    return [f"{100000 + i * 7919}" for i in range(count)]


@dataclass(frozen=True)
class Publish:
    """One PUBLISH through the proxy: who, when, what came back and from which member."""

    user: str
    sent_at: float
    done_at: float
    status: int | None
    server: str


@dataclass
class PoolRecord(TimelineRecord):
    """Raw observations of one pool run; wall-clock times."""

    publishes: list[Publish] = field(default_factory=list)
    # per member: what its relay saw (new requests, retransmissions, responses)
    relay: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # (time, member, "down"/"up" or the breaker state) from the proxy's log
    rotation: list[tuple[float, str, str]] = field(default_factory=list)


class _Member:
    """One presence server and the counting relay the proxy sends to."""

    def __init__(self, name: str, workdir: Path, children: int) -> None:
        self.name = name
        self.workdir = workdir
        self.server = presence_server(workdir / name, free_port(), children)
        self.server.defines["SERVER_HEADER"] = quoted(f"Server: {name}")
        self.relay_port = free_port()
        self.events = workdir / f"{name}-relay-events.json"
        self.relay: Child | None = None

    @property
    def uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.relay_port}"

    def start(self) -> None:
        self.server.start()
        argv = python_module(
            "lab.wire",
            "--listen",
            str(self.relay_port),
            "--upstream",
            str(self.server.port),
            "--stats",
            str(self.workdir / f"{self.name}-relay.json"),
            "--events",
            str(self.events),
        )
        relay = self.relay = Child(argv, self.workdir / f"{self.name}-relay.log")
        wait_until(lambda: "wire ready" in relay.output(), 10, f"the {self.name} relay")

    def stop_relay(self) -> dict[str, list[float]]:
        """Stop the relay (it writes its events on exit) and read them back."""
        if self.relay is None:
            return {}
        self.relay.stop()
        self.relay = None
        try:
            events: dict[str, list[float]] = json.loads(self.events.read_text())
        except (OSError, ValueError) as exc:
            raise LabError(f"the {self.name} relay left no event file ({exc})") from None
        return events

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        self.server.stop()


class _Environment:
    """The processes of one pool run, started in order and always stopped."""

    def __init__(self, mode: Mode, params: PoolParams, workdir: Path) -> None:
        self.mode = mode
        self.params = params
        self.workdir = workdir.resolve()
        self.members = {n: _Member(n, self.workdir, params.presence_children) for n in MEMBERS}
        self.redis: Redis | None = None
        self.sidecar: Sidecar | None = None
        self.proxy: Kamailio | None = None

    def start(self) -> None:
        for member in self.members.values():
            member.start()
        dslist = self.workdir / "dispatcher.list"
        port = free_port()
        rundir = self.workdir / "proxy"
        p = self.params
        if self.mode == "baseline":
            dslist.write_text("".join(f"1 {m.uri} 0 0\n" for m in self.members.values()))
            defines: dict[str, str | int | bool] = {
                "LISTEN": f"udp:{LOOPBACK}:{port}",
                "DS_LIST": quoted(str(dslist)),
                "DS_PING_INTERVAL": p.ds_ping_interval,
                "DS_PROBING_THRESHOLD": p.ds_probing_threshold,
                "CHILDREN": p.proxy_children,
            }
            self.proxy = Kamailio(DISPATCHER_PROXY_CFG, rundir, port, defines, name="proxy")
            self.proxy.start()
            return
        dslist.write_text("".join(f"1 {m.uri} 0 0 breaker={n}\n" for n, m in self.members.items()))
        self.redis = Redis(self.workdir / "redis").start()
        breakers = [
            {
                "name": name,
                "target": f"sip:{LOOPBACK}:{member.server.port};transport=udp",
                "interval": p.interval,
                "timeout": p.timeout,
                "fall": p.fall,
                "rise": p.rise,
                "slow_start": p.slow_start,
            }
            for name, member in self.members.items()
        ]
        api_port = free_port()
        toml = sidecar_toml(redis_url=self.redis.url, api_port=api_port, breakers=breakers)
        names = ", ".join(f'"{n}"' for n in MEMBERS)
        toml += f'\n[[pools]]\nname = "{POOL}"\nmembers = [{names}]\n'
        self.sidecar = Sidecar(self.workdir / "sidecar", toml, api_port).start()
        defines = proxy_defines(
            port,
            self.members[MEMBERS[0]].relay_port,  # PRESENCE_URI: unused in pool mode
            self.redis.port,
            WITH_PRESENCE_POOL=True,
            PRESENCE_DSLIST=quoted(str(dslist)),
            BREAKER_POLL_MS=p.poll_ms,
            BREAKER_PRESENCE_MAX_RATE=p.capacity,
            CHILDREN=p.proxy_children,
        )
        self.proxy = Kamailio(PROXY_CFG, rundir, port, defines, name="proxy").start()
        proxy = self.proxy
        wait_until(
            lambda: all(_state(proxy, n) == "closed" for n in MEMBERS),
            20,
            "the proxy to read every member closed",
            interval=0.1,
        )

    def stop(self) -> None:
        for part in (self.proxy, self.sidecar, self.redis, *self.members.values()):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()


def _state(proxy: Kamailio, name: str) -> str | None:
    """The state in the proxy's last verdict line for this member."""
    verdict = proxy.latest_verdicts().get(name)
    return None if verdict is None else verdict.get("state")


def _on_rotation_line(members: dict[str, str], record: PoolRecord) -> Callable[[float, str], None]:
    """Record the proxy's member events: dispatcher's down/up, or a member's verdict."""

    def on_line(now: float, line: str) -> None:
        if match := _DS_EVENT.search(line):
            name = members.get(match.group(2))
            if name is not None:
                record.rotation.append((now, name, match.group(1)))
        elif (verdict := parse_verdict(line)) is not None:
            record.rotation.append((now, verdict["name"], verdict["state"]))

    return on_line


async def _drive(env: _Environment, tick: Tick | None) -> PoolRecord:
    params, record = env.params, PoolRecord(env.mode)
    assert env.proxy is not None
    frozen = env.members[FROZEN].server
    uac = await SipUac.open((LOOPBACK, env.proxy.port))
    by_uri = {m.uri: n for n, m in env.members.items()}
    tail = asyncio.create_task(tail_lines(env.proxy.log, _on_rotation_line(by_uri, record)))
    users = subscribers(params.subscribers)
    step = params.period / len(users)
    loop = asyncio.get_running_loop()
    start = loop.time()
    record.t0 = time.time()
    end = start + params.duration
    in_flight: set[asyncio.Task[None]] = set()

    async def publish(user: str) -> None:
        sent = time.time()
        try:
            outcome = await publish_mwi(uac, user, DOMAIN)
        except asyncio.CancelledError:  # unanswered when the run ended
            record.publishes.append(Publish(user, sent, time.time(), None, ""))
            raise
        server = outcome.response.get("server") if outcome.response is not None else None
        record.publishes.append(
            Publish(user, outcome.sent_at, outcome.done_at, outcome.status, server or "")
        )

    async def load() -> None:
        n = 0
        while start + n * step < end:
            await sleep_until(start + n * step)
            task = asyncio.create_task(publish(users[n % len(users)]))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            n += 1

    async def progress() -> None:
        second = 0
        while start + second <= end:
            await sleep_until(start + second)
            if tick is not None:
                tick(env.mode, float(second), params.phase_at(second))
            second += 1

    loops = [asyncio.create_task(load()), asyncio.create_task(progress())]
    try:
        await sleep_until(start + params.normal)
        frozen.freeze()
        record.freeze_at = time.time()
        await sleep_until(start + params.normal + params.freeze)
        frozen.thaw()
        record.thaw_at = time.time()
        await asyncio.gather(*loops)
        record.end_at = record.t0 + params.duration
    finally:
        for task in (*loops, *in_flight, tail):
            task.cancel()
        await asyncio.gather(*loops, *in_flight, tail, return_exceptions=True)
        uac.close()
    for name, member in env.members.items():
        record.relay[name] = await asyncio.to_thread(member.stop_relay)
    return record


async def run_pool_timeline(
    mode: Mode, params: PoolParams, workdir: Path, tick: Tick | None = None
) -> PoolRecord:
    """Start everything, play normal → a member's lock-up → restart, stop everything.

    SIGTERM (like Ctrl-C) cancels the run; every process is stopped on the way out.
    """
    env = _Environment(mode, params, workdir)
    env.workdir.mkdir(parents=True, exist_ok=True)
    return await run_in(env, lambda: _drive(env, tick))
