"""False alarms: spurious opens against a healthy presence server behind a lossy relay.

Real parts: the Kamailio presence server (healthy all along), two UDP relays in
front of it that drop 2 % and 5 % of datagrams at random (each direction, each
datagram independently: a probe is lost with about 4 % and 10 % probability), one
sidecar at its default settings with a breaker behind each relay, and, as the
same-run baseline, Kamailio's dispatcher (bench/dispatcher.cfg) pinging through
both relays. Both loss rates run at the same time for the same duration.

Every open of a breaker and every dst-down of the dispatcher is a false alarm:
the server never stopped answering.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx

from bench import _dispatcher
from bench._common import Result
from bench._lossy_relay import LossyRelay
from bench.detection import _Events
from breaker.lab._procs import (
    LOOPBACK,
    Redis,
    Sidecar,
    free_port,
    presence_server,
    sidecar_toml,
)

LOSSES = {"loss2": 0.02, "loss5": 0.05}
# same relays, the defaults but a fixed timeout: does the adaptive one cost false alarms?
FIXED = {f"{name}_fixed": name for name in LOSSES}
GOAL_AT = "loss2"
FULL_S, QUICK_S = 600.0, 15.0

_FAILURES = re.compile(
    r'^breaker_probe_failures_total\{name="(?P<name>[^"]+)",reason="(?P<reason>[^"]+)"\} '
    r"(?P<n>[0-9.e+]+)$",
    re.M,
)


async def _watch(
    ports: dict[str, int], upstream: int, redis_url: str, api: str, seconds: float
) -> dict[str, Any]:
    relays = {
        name: await LossyRelay((LOOPBACK, ports[name]), (LOOPBACK, upstream), loss, seed).start()
        for seed, (name, loss) in enumerate(LOSSES.items(), start=1)
    }
    try:
        async with _Events(redis_url) as events:
            started = time.time()
            await asyncio.sleep(seconds)
            async with httpx.AsyncClient(base_url=api, timeout=5) as client:
                status = (await client.get("/v1/breakers")).json()["breakers"]
                metrics = (await client.get("/metrics")).text
    finally:
        for relay in relays.values():
            relay.close()
    names = [*LOSSES, *FIXED]
    opens = {
        name: [
            round(at - started, 2)
            for at, e in events.seen
            if e.get("name") == name and e.get("to") == "open"
        ]
        for name in names
    }
    failures: dict[str, dict[str, int]] = {name: {} for name in names}
    for m in _FAILURES.finditer(metrics):
        if m["name"] in failures:
            failures[m["name"]][m["reason"]] = int(float(m["n"]))
    return {
        "seconds": round(time.time() - started, 1),
        "relays": {
            name: {"loss": r.loss, "forwarded": r.forwarded, "dropped": r.dropped}
            for name, r in relays.items()
        },
        "opens": opens,
        "probes": {b["name"]: b["counters"] for b in status if b["name"] in names},
        "failures_by_reason": failures,
    }


def run(quick: bool, workdir: Path) -> Result:
    seconds = QUICK_S if quick else FULL_S
    result = Result(
        "false_alarms",
        "False alarms: healthy presence server behind a lossy relay, default settings",
        f"0 spurious opens in {FULL_S / 60:g} min at 2 % datagram loss; 5 % reported",
        quick,
    )
    started = time.monotonic()
    redis = Redis(workdir / "redis").start()
    presence_port, api_port = free_port(), free_port()
    ports = {name: free_port() for name in LOSSES}
    presence = presence_server(workdir / "presence", presence_port)
    sidecar = Sidecar(
        workdir / "sidecar",
        sidecar_toml(
            redis_url=redis.url,
            api_port=api_port,
            breakers=[
                {"name": name, "target": f"sip:{LOOPBACK}:{port};transport=udp"}
                for name, port in ports.items()
            ]
            + [
                {
                    "name": name,
                    "target": f"sip:{LOOPBACK}:{ports[relay]};transport=udp",
                    "adaptive_timeout": False,
                }
                for name, relay in FIXED.items()
            ],
            level="warning",
        ),
        api_port,
    )
    uris = {name: f"sip:{LOOPBACK}:{port}" for name, port in ports.items()}
    disp = _dispatcher.dispatcher(workdir / "dispatcher", list(uris.values()))
    try:
        presence.start()
        # the relays start inside _watch: both probers retry until they are there
        sidecar.start()
        disp.start()
        data = asyncio.run(_watch(ports, presence_port, redis.url, sidecar.base_url, seconds))
        downs = _dispatcher.verdicts(disp)
    finally:
        disp.stop()
        sidecar.stop()
        presence.stop()
        redis.stop()
    data["dispatcher_downs"] = {
        name: sum(1 for v in downs if v.kind == "down" and v.uri == uri)
        for name, uri in uris.items()
    }
    data["dispatcher_verdicts_seen"] = len(downs)
    result.data = data
    opens = {name: len(times) for name, times in data["opens"].items()}
    result.met = opens[GOAL_AT] == 0 and data["seconds"] >= seconds - 1
    probes = data["probes"]
    result.summary = "; ".join(
        f"{LOSSES[name]:.0%} loss: {opens[name]} spurious opens in {data['seconds'] / 60:.1f} min "
        f"({probes[name]['probe_failures']} of {probes[name]['probes']} probes failed; "
        f"fixed timeout: {opens[name + '_fixed']}; dispatcher: {data['dispatcher_downs'][name]})"
        for name in LOSSES
    )
    result.duration_s = time.monotonic() - started
    return result
