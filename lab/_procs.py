"""Child processes for the lab and the benchmarks: loopback only, own process group, always stopped.

Every piece the lab runs (Redis, two Kamailios, the sidecar, the wire helper, the
vm-presence instances) is a `Child`: started in its own session so a SIGSTOP or a
SIGTERM reaches all of its forks, logging to a file, and stopped with a bounded
SIGCONT → SIGTERM → SIGKILL sequence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from breaker._errors import BreakerError

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]  # the checkout: lab/ sits beside breaker/
KAMAILIO_CONFIG_DIR = REPO / "kamailio-config"
PROXY_CFG = KAMAILIO_CONFIG_DIR / "kamailio.cfg"
PRESENCE_CFG = KAMAILIO_CONFIG_DIR / "presence-server.cfg"
SQLITE_SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
TICKS = os.sysconf("SC_CLK_TCK")

Define = str | int | bool


class LabError(BreakerError):
    """A lab or benchmark piece could not be started or measured."""


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: run `make setup` (Debian: kamailio, "
            "kamailio-redis-modules, kamailio-presence-modules, kamailio-sqlite-modules, "
            "kamailio-utils-modules, redis-server, sip-tester, wrk)"
        )


def free_port() -> int:
    """A loopback port free for both UDP and TCP right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise LabError("no loopback port free for both UDP and TCP")


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
        return True
    return False


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


def _importable() -> dict[str, str]:
    """PYTHONPATH with the checkout first, so `python -m lab.…` children run from any cwd."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class Child:
    """One child process (and its forks) in its own session."""

    def __init__(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **_importable(), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the whole group: alive, sockets open, nothing processed."""
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        if self.alive():
            self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout)
        else:
            self.signal(signal.SIGKILL)  # leftovers in the group
        self._log.close()

    def output(self) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]


def await_ready(child: Child, ready: Callable[[], bool], timeout: float, name: str) -> None:
    """Poll `ready` until it holds; fail fast with the log tail if the child dies first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not child.alive():
            raise LabError(f"{name} exited at start:\n{child.tail()}")
        if time.monotonic() > deadline:
            raise LabError(f"{name} not ready after {timeout:g}s")
        time.sleep(0.05)


@dataclass(frozen=True)
class SippRun:
    """What one sipp UAC run achieved, from its -trace_stat file."""

    returncode: int
    successful: int
    failed: int
    elapsed: float
    output: str

    @property
    def rate(self) -> float:
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0


def run_sipp(
    scenario: Path,
    target: tuple[str, int],
    *,
    calls: int,
    rate: float,
    limit: int,
    workdir: Path,
    timeout: float,
    wrapper: Sequence[str] = (),
) -> SippRun:
    """One sipp UAC run to completion, bounded by -m calls and by `timeout`."""
    workdir.mkdir(parents=True, exist_ok=True)
    stats = workdir / f"{scenario.stem}-{time.monotonic_ns()}.csv"
    argv = [
        *wrapper,
        "sipp",
        "-sf",
        str(scenario),
        "-m",
        str(calls),
        "-r",
        f"{rate:g}",
        "-l",
        str(limit),
        "-i",
        LOOPBACK,
        "-p",
        str(free_port()),
        "-nostdin",
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stats),
        "-fd",
        "1",
        f"{target[0]}:{target[1]}",
    ]
    started = time.monotonic()
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout + 15, cwd=workdir, check=False
    )
    elapsed = time.monotonic() - started
    successful = failed = 0
    if stats.exists():
        rows = [line.split(";") for line in stats.read_text().splitlines() if line]
        header, last = rows[0], rows[-1]
        successful = int(last[header.index("SuccessfulCall(C)")])
        failed = int(last[header.index("FailedCall(C)")])
        stats.unlink()
    output = done.stdout[-3000:] + done.stderr
    return SippRun(done.returncode, successful, failed, elapsed, output)


# ---------------------------------------------------------------- CPU accounting


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (/proc/<pid>/stat), in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def group_cpu_seconds(pgid: int) -> float:
    """utime + stime of every live process in a process group (Kamailio forks many)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


# ---------------------------------------------------------------- Redis


class Redis:
    """A throw-away redis-server on a loopback port, no persistence."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> Redis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.child = Child(argv, self.workdir / "redis.log")
        wait_until(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.child:
            self.child.stop()
            self.child = None


# ---------------------------------------------------------------- Kamailio


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


class _Started:
    """A process wrapper whose `start()` sets `child`: its pid and an idempotent stop."""

    child: Child | None = None

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    def stop(self) -> None:
        if self.child:
            self.child.stop()
            self.child = None


class Kamailio(_Started):
    """Kamailio with -DD -E in its own run dir; ready when it answers OPTIONS."""

    def __init__(
        self,
        cfg: Path,
        rundir: Path,
        port: int,
        defines: Mapping[str, Define],
        *,
        name: str,
        extra_args: Sequence[str] = (),
        wrapper: Sequence[str] = (),
    ) -> None:
        self.cfg = cfg
        self.rundir = rundir
        self.port = port
        self.defines = dict(defines)
        self.name = name
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)
        self.child: Child | None = None

    @property
    def log(self) -> Path:
        return self.rundir / f"{self.name}.log"

    def start(self, ready_timeout: float = 15.0) -> Kamailio:
        self.rundir.mkdir(parents=True, exist_ok=True)
        argv = [*self.wrapper, "kamailio", "-DD", "-E", "-f", str(self.cfg)]
        argv += ["-Y", str(self.rundir), "-w", str(self.rundir), *self.extra_args]
        argv += define_args(self.defines)
        self.child = Child(argv, self.log)
        await_ready(self.child, lambda: sip_ping(self.port), ready_timeout, self.name)
        return self

    def rpc(self, *args: str, timeout: float = 2.0) -> str:
        """kamcmd on this instance's ctl socket; empty string when it does not answer."""
        try:
            done = subprocess.run(
                ["kamcmd", "-s", f"unix:{self.rundir / 'kamailio_ctl'}", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return ""
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


def presence_server(rundir: Path, port: int, children: int = 2) -> Kamailio:
    """The real Kamailio presence server (presence + presence_mwi + db_sqlite)."""
    rundir = rundir.resolve()  # db_sqlite resolves relative paths against -w
    db = create_presence_db(rundir / "presence.sqlite")
    defines: dict[str, Define] = {
        "LISTEN": f"udp:{LOOPBACK}:{port}",
        "DB_URL": quoted(f"sqlite:///{db}"),
        "CHILDREN": children,
    }
    return Kamailio(PRESENCE_CFG, rundir, port, defines, name="presence")


# ---------------------------------------------------------------- the sidecar


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Sidecar(_Started):
    """`python -m breaker serve --config FILE`, ready when the API answers."""

    def __init__(self, workdir: Path, config_text: str, api_port: int) -> None:
        self.workdir = workdir
        self.config = workdir / "breaker.toml"
        self.config_text = config_text
        self.api_port = api_port
        self.child: Child | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    def start(self, ready_timeout: float = 20.0, wrapper: Sequence[str] = ()) -> Sidecar:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        argv = [*wrapper, *python_module("breaker", "serve", "--config", str(self.config))]
        env = {"PYTHONUNBUFFERED": "1"}
        self.child = Child(argv, self.workdir / "sidecar.log", env=env, cwd=REPO)
        await_ready(self.child, lambda: port_open(self.api_port), ready_timeout, "sidecar")
        return self


def sidecar_toml(
    *,
    redis_url: str,
    api_port: int,
    breakers: Sequence[Mapping[str, object]],
    level: str = "info",
) -> str:
    """A sidecar config: [redis], [api], [logging] and one [[breakers]] table per mapping."""
    lines = [
        "[redis]",
        f'url = "{redis_url}"',
        "",
        "[api]",
        f'host = "{LOOPBACK}"',
        f"port = {api_port}",
        "",
        "[logging]",
        f'level = "{level}"',
        'format = "json"',
    ]
    for breaker in breakers:
        lines += ["", "[[breakers]]"]
        for key, value in breaker.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
