"""The peer prober: Kamailio 5.6's dispatcher (bench/dispatcher.cfg), and its verdicts.

It pings every destination in its list once a second (OPTIONS, tm fr_timer 2 s) and
marks one down after 3 failed pings; event_route[dispatcher:dst-down|dst-up] logs
`event=ds.down uri=… at=<unix seconds>`, which `verdicts()` reads back. `state()`
asks the live module over the ctl socket (`kamcmd dispatcher.list`) as a cross-check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench._common import BENCH_DIR
from testbed.kamailio import Kamailio, quoted
from testbed.procs import LOOPBACK, free_port

DISPATCHER_CFG = BENCH_DIR / "dispatcher.cfg"
FR_TIMER_MS, PING_INTERVAL_S, THRESHOLD = 2000, 1, 3  # as in dispatcher.cfg

_VERDICT = re.compile(r"event=ds\.(?P<kind>down|up) uri=(?P<uri>\S+) at=(?P<at>[0-9.]+)")


@dataclass(frozen=True)
class DsVerdict:
    kind: str  # "down" or "up"
    uri: str
    at: float  # unix seconds, from Kamailio's own clock at the event


def dispatcher(rundir: Path, destinations: list[str]) -> Kamailio:
    """A dispatcher instance pinging `destinations` (SIP URIs), all in set 1."""
    rundir = rundir.resolve()
    rundir.mkdir(parents=True, exist_ok=True)
    listing = rundir / "dispatcher.list"
    listing.write_text("".join(f"1 {uri} 0 0\n" for uri in destinations))
    port = free_port()
    defines = {"LISTEN": f"udp:{LOOPBACK}:{port}", "DS_LIST": quoted(str(listing))}
    return Kamailio(DISPATCHER_CFG, rundir, port, defines, name="dispatcher")


def verdicts(kam: Kamailio) -> list[DsVerdict]:
    """Every dst-down/dst-up the dispatcher logged so far, in order."""
    if not kam.log.exists():
        return []
    return [
        DsVerdict(m["kind"], m["uri"], float(m["at"]))
        for m in _VERDICT.finditer(kam.log.read_text(errors="replace"))
    ]


def state(kam: Kamailio, uri: str) -> str:
    """The destination's flags as `kamcmd dispatcher.list` shows them (AP active, IP inactive)."""
    out = kam.rpc("dispatcher.list")
    at = out.find(uri)
    if at < 0:
        return ""
    match = re.search(r"FLAGS:\s*(\S+)", out[at:])
    return match.group(1) if match else ""
