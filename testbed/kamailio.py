"""Kamailio processes: the shipped proxy, the presence server, or any cfg, with -A defines.

A `Kamailio` runs with -DD -E in its own run dir (ctl socket, log), is ready when a SIP
worker answers OPTIONS with 200, and is stopped with its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from testbed.procs import LOOPBACK, REPO, Child, LabError, Started, await_ready, require
from testbed.verdicts import LoggedVerdict, VerdictWriter, logged_verdicts
from testbed.waiting import TimedOut, wait_until

KAMAILIO_CONFIG_DIR = REPO / "kamailio-config"
PROXY_CFG = KAMAILIO_CONFIG_DIR / "kamailio.cfg"
PRESENCE_CFG = KAMAILIO_CONFIG_DIR / "presence-server.cfg"
BREAKER_CFG = KAMAILIO_CONFIG_DIR / "breaker.cfg"
SQLITE_SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")

Define = str | int | bool


def define_args(defines: Mapping[str, Define]) -> list[str]:
    """-A arguments: True is a bare define; strings are passed verbatim (quote with quoted())."""
    args: list[str] = []
    for name, value in defines.items():
        if value is False:
            continue
        args += ["-A", name if value is True else f"{name}={value}"]
    return args


def quoted(value: str) -> str:
    return f'"{value}"'


def check_config(cfg: Path, defines: Mapping[str, Define]) -> subprocess.CompletedProcess[str]:
    """Run `kamailio -c`; the caller asserts on returncode/output."""
    require("kamailio")
    return subprocess.run(
        ["kamailio", "-c", "-f", str(cfg), *define_args(defines)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def sip_ping(port: int, timeout: float = 0.2) -> bool:
    """True when something on 127.0.0.1:port answers an OPTIONS with 200."""
    branch = f"z9hG4bKping{os.getpid()}{time.monotonic_ns()}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        local = sock.getsockname()[1]
        msg = (
            f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{local};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:lab@{LOOPBACK}>;tag=ping\r\n"
            f"To: <sip:ping@{LOOPBACK}>\r\n"
            f"Call-ID: {branch}@lab\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.settimeout(timeout)
        sock.sendto(msg.encode(), (LOOPBACK, port))
        try:
            while True:
                data = sock.recv(65535)
                if branch.encode() in data:
                    return data.startswith(b"SIP/2.0 200")
        except OSError:
            return False


class Kamailio(Started):
    """Kamailio with -DD -E in its own run dir; ready when it answers OPTIONS."""

    def __init__(
        self,
        cfg: Path,
        rundir: Path,
        port: int,
        defines: Mapping[str, Define],
        name: str = "kamailio",
        extra_args: Sequence[str] = (),
        wrapper: Sequence[str] = (),
    ) -> None:
        self.cfg = cfg
        self.rundir = rundir
        self.port = port
        self.defines = dict(defines)
        self.name = name
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)  # e.g. ["taskset", "-c", "0"] for measurements
        self.proc: Child | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    @property
    def log(self) -> Path:
        return self.rundir / f"{self.name}.log"

    def start(self, ready_timeout: float = 15.0) -> Self:
        require("kamailio")
        self.rundir.mkdir(parents=True, exist_ok=True)
        argv = [*self.wrapper, "kamailio", "-DD", "-E", "-f", str(self.cfg)]
        argv += ["-Y", str(self.rundir), "-w", str(self.rundir), *self.extra_args]
        argv += define_args(self.defines)
        self.proc = Child(argv, self.log)
        await_ready(self.proc, lambda: sip_ping(self.port), ready_timeout, self.name)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- the control socket ------------------------------------------------------------

    def rpc(self, *args: str, timeout: float = 2.0, check: bool = False) -> str:
        """kamcmd on this instance's ctl socket: its output, or "" when it does not answer
        (with `check`, a LabError instead)."""
        argv = ["kamcmd", "-s", f"unix:{self.rundir / 'kamailio_ctl'}", *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise LabError(f"{self.name}: kamcmd {' '.join(args)} timed out") from None
            return ""
        if done.returncode != 0 and check:
            raise LabError(f"{self.name}: kamcmd {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else ""

    def stats(self) -> dict[str, int]:
        """All counters (`group:name` -> value) from `stats.get_statistics all`."""
        found: dict[str, int] = {}
        for line in self.rpc("stats.get_statistics", "all").splitlines():
            name, sep, value = line.partition("=")
            if sep:
                with contextlib.suppress(ValueError):
                    found[name.strip()] = int(value.strip())
        return found

    def htable_get(self, table: str, key: str) -> str | None:
        out = self.rpc("htable.get", table, key, timeout=10, check=True)
        match = re.search(r"value:\s*(.*)", out)
        return match[1].strip() if match else None

    # -- the verdicts it enforces ------------------------------------------------------

    def verdicts(self) -> list[LoggedVerdict]:
        return logged_verdicts(self.output().splitlines())

    def latest_verdicts(self) -> dict[str, LoggedVerdict]:
        """The last verdict line per breaker name (a pool has one per member)."""
        return {verdict.get("name"): verdict for verdict in self.verdicts()}

    def wait_verdict(self, timeout: float = 5.0, **expected: object) -> LoggedVerdict:
        """Wait until the latest verdict log line matches `expected`."""

        def latest() -> LoggedVerdict | None:
            lines = self.verdicts()
            return lines[-1] if lines and lines[-1].matches(**expected) else None

        try:
            return wait_until(latest, timeout, f"verdict {expected}", interval=0.05)
        except TimedOut:
            seen = [v.fields for v in self.verdicts()]
            raise TimedOut(
                f"{self.name}: no verdict line matching {expected} within {timeout:g}s; "
                f"seen: {seen}"
            ) from None


def enforced(
    proxy: Kamailio, writer: VerdictWriter, state: str, retry_after: int | None = None
) -> LoggedVerdict:
    """Write a verdict to Redis and wait until `proxy` logs that it enforces it."""
    epoch = writer.set(state, retry_after=retry_after)
    return proxy.wait_verdict(state=state, epoch=epoch)


def proxy_defines(
    port: int, presence_port: int, redis_port: int, **extra: Define
) -> dict[str, Define]:
    """The shipped proxy (kamailio-config/kamailio.cfg), configured by -A defines only."""
    defines: dict[str, Define] = {
        "LISTEN": f"udp:{LOOPBACK}:{port}",
        "PRESENCE_URI": quoted(f"sip:{LOOPBACK}:{presence_port}"),
        "BREAKER_REDIS_SERVER": quoted(f"name=breaker;addr={LOOPBACK};port={redis_port};db=0"),
        "BREAKER_NAME": quoted("presence"),
        "CHILDREN": 2,
        "DEBUG_LEVEL": 2,
    }
    defines.update(extra)
    return defines


def create_presence_db(path: Path) -> Path:
    """A fresh sqlite db from Kamailio's own schema files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        for name in ("standard-create.sql", "presence-create.sql"):
            db.executescript((SQLITE_SCHEMA_DIR / name).read_text())
        db.commit()
    return path


def presence_defines(port: int, db: Path, children: int = 2, **extra: Define) -> dict[str, Define]:
    """The shipped presence server (kamailio-config/presence-server.cfg) on `db`."""
    defines: dict[str, Define] = {
        "LISTEN": f"udp:{LOOPBACK}:{port}",
        "DB_URL": quoted(f"sqlite:///{db}"),
        "CHILDREN": children,
    }
    defines.update(extra)
    return defines


def presence_server(
    rundir: Path, port: int, children: int = 2, wrapper: Sequence[str] = ()
) -> Kamailio:
    """The real Kamailio presence server (presence + presence_mwi + db_sqlite), not started."""
    rundir = rundir.resolve()  # db_sqlite resolves relative paths against -w
    db = create_presence_db(rundir / "presence.sqlite")
    defines = presence_defines(port, db, children)
    return Kamailio(PRESENCE_CFG, rundir, port, defines, name="presence", wrapper=wrapper)
