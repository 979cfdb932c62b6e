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
from bench._stack import stack
from bench.detection import _Events
from testbed.procs import LOOPBACK, free_port

LOSSES = {"loss2": 0.02, "loss5": 0.05}
# same relays, the defaults but a fixed timeout: does the adaptive one cost false alarms?
FIXED = {f"{name}_fixed": name for name in LOSSES}
GOAL_AT = "loss2"
FULL_S, QUICK_S = 600.0, 15.0
WARM_UP_S = 3.0
SEEDS = (1, 2)  # one per relay

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
        for seed, (name, loss) in zip(SEEDS, LOSSES.items(), strict=True)
    }
    names = [*LOSSES, *FIXED]
    try:
        async with _Events(redis_url) as events, httpx.AsyncClient(base_url=api) as client:
            await asyncio.sleep(WARM_UP_S)  # probes that failed before the relays were there
            before = await _counters(client, names)
            started = time.time()
            await asyncio.sleep(seconds)
            after = await _counters(client, names)
    finally:
        for relay in relays.values():
            relay.close()
    opens = {
        name: [
            {"at_s": round(at - started, 2), "from": e.get("from")}
            for at, e in events.seen
            if at >= started and e.get("name") == name and e.get("to") == "open"
        ]
        for name in names
    }
    return {
        "seconds": round(time.time() - started, 1),
        "relays": {
            name: {"loss": r.loss, "forwarded": r.forwarded, "dropped": r.dropped}
            for name, r in relays.items()
        },
        "opens": opens,
        "probes": {
            name: {k: after[name][k] - before[name].get(k, 0) for k in after[name]}
            for name in names
        },
    }


async def _counters(client: httpx.AsyncClient, names: list[str]) -> dict[str, dict[str, int]]:
    """Per breaker: probes sent, and failed probes in total and by reason."""
    status = (await client.get("/v1/breakers", timeout=5)).json()["breakers"]
    found = {b["name"]: dict(b["counters"]) for b in status if b["name"] in names}
    for m in _FAILURES.finditer((await client.get("/metrics", timeout=5)).text):
        if m["name"] in found:
            found[m["name"]][f"failed_{m['reason']}"] = int(float(m["n"]))
    return found


TITLE = "False alarms: healthy presence server behind a lossy relay, default settings"
GOAL_TEXT = f"0 spurious opens in {FULL_S / 60:g} min at 2 % datagram loss; 5 % reported"


def run(result: Result, workdir: Path) -> Result:
    quick = result.quick
    seconds = QUICK_S if quick else FULL_S
    ports = {name: free_port() for name in LOSSES}
    uris = {name: f"sip:{LOOPBACK}:{port}" for name, port in ports.items()}
    breakers = [{"name": name, "target": f"{uri};transport=udp"} for name, uri in uris.items()] + [
        {"name": name, "target": f"{uris[relay]};transport=udp", "adaptive_timeout": False}
        for name, relay in FIXED.items()
    ]
    # the relays start inside _watch: until then, both probers see no answer
    with stack(workdir, lambda _: breakers, dispatch=lambda _: list(uris.values())) as run:
        assert run.dispatcher is not None
        data = asyncio.run(
            _watch(ports, run.presence.port, run.redis.url, run.sidecar.base_url, seconds)
        )
        downs = _dispatcher.verdicts(run.dispatcher)
    data["dispatcher_downs"] = {
        name: sum(1 for v in downs if v.kind == "down" and v.uri == uri)
        for name, uri in uris.items()
    }
    data["dispatcher_verdicts_seen"] = len(downs)
    result.data = data
    # from closed: a false alarm; from half_open: a reopen while recovering from one
    opens = {name: len(found) for name, found in data["opens"].items()}
    alarms = {
        name: sum(1 for o in found if o["from"] == "closed")
        for name, found in data["opens"].items()
    }
    for name in LOSSES:
        sent, failed = data["probes"][name]["probes"], data["probes"][name]["probe_failures"]
        share = failed / sent if sent else 0.0
        data["probes"][name]["expected_opens"] = round(sent * (1 - share) * share**3, 2)
    result.notes.append(
        "with independent losses, any prober that opens on 3 failures in a row expects about "
        "probes x (1 - q) x q^3 spurious opens (q: the share of failed probes): "
        + ", ".join(f"{data['probes'][n]['expected_opens']} at {LOSSES[n]:.0%}" for n in LOSSES)
        + f" in this run. The relays' random drops are seeded ({', '.join(map(str, SEEDS))}): "
        "every run replays the same loss sequence"
    )
    result.met = opens[GOAL_AT] == 0 and data["seconds"] >= seconds - 1
    probes = data["probes"]
    result.summary = "; ".join(
        f"{LOSSES[name]:.0%} loss: {alarms[name]} spurious opens ({opens[name]} with reopens) in "
        f"{data['seconds'] / 60:.1f} min ({probes[name]['probe_failures']} of "
        f"{probes[name]['probes']} probes failed; fixed timeout: {alarms[name + '_fixed']} "
        f"({opens[name + '_fixed']}); dispatcher: {data['dispatcher_downs'][name]} dst-down)"
        for name in LOSSES
    )
    return result
