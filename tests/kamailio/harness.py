"""Real Kamailio processes for tests: the proxy, the presence server, a responder, the hash."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from lab._procs import (
    Define,
    SippRun,
    define_args,
    quoted,
)
from lab._procs import proxy_defines as lab_proxy_defines
from lab._procs import run_sipp as run_sipp_file
from tests.kamailio.sip import SipClient
from tests.support.procs import Proc, free_port_both, wait_until

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "kamailio-config"
PROXY_CFG = CONFIG_DIR / "kamailio.cfg"
PRESENCE_CFG = CONFIG_DIR / "presence-server.cfg"
BREAKER_CFG = CONFIG_DIR / "breaker.cfg"
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def kamailio_binary() -> str:
    path = shutil.which("kamailio")
    if path is None:
        raise AssertionError(
            "kamailio is not installed: apt-get install kamailio kamailio-redis-modules "
            "kamailio-presence-modules kamailio-sqlite-modules kamailio-utils-modules"
        )
    return path


def check_config(cfg: Path, defines: Mapping[str, Define]) -> subprocess.CompletedProcess[str]:
    """Run `kamailio -c`; the caller asserts on returncode/output."""
    return subprocess.run(
        [kamailio_binary(), "-c", "-f", str(cfg), *define_args(defines)],
        capture_output=True,
        text=True,
        timeout=30,
    )


_VERDICT = re.compile(r"event=breaker\.verdict (.*)$")
_PAIR = re.compile(r'(\w+)=("[^"]*"|\S*)')


@dataclass
class Verdict:
    """One `event=breaker.verdict` log line."""

    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def matches(self, **expected: object) -> bool:
        return all(self.fields.get(k) == str(v) for k, v in expected.items())


class Kamailio:
    """A Kamailio started with -DD -E in its own run dir, stopped on exit."""

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
        self.extra_args = list(extra_args)
        self.wrapper = list(wrapper)  # e.g. ["taskset", "-c", "0"] for measurements
        self.rundir = rundir
        self.port = port
        self.defines = dict(defines)
        self.name = name
        self.proc: Proc | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self, ready_timeout: float = 15.0) -> Kamailio:
        self.rundir.mkdir(parents=True, exist_ok=True)
        argv = [
            *self.wrapper,
            kamailio_binary(),
            "-DD",
            "-E",
            "-f",
            str(self.cfg),
            "-Y",
            str(self.rundir),
            "-w",
            str(self.rundir),
            *self.extra_args,
            *define_args(self.defines),
        ]
        self.proc = Proc(argv, self.rundir / f"{self.name}.log")
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Ready when a SIP worker answers OPTIONS with 200."""
        deadline = time.monotonic() + timeout
        with SipClient(self.address) as client:
            while True:
                assert self.proc is not None
                if not self.proc.alive():
                    raise AssertionError(f"{self.name} exited at start:\n{self.output()[-4000:]}")
                got = client.send_all([client.options()], timeout=0.2)
                if any(r.code == 200 for r in got.values()):
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{self.name} not answering OPTIONS after {timeout}s:\n"
                        f"{self.output()[-4000:]}"
                    )

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def output(self) -> str:
        path = self.rundir / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def verdicts(self) -> list[Verdict]:
        found = []
        for line in self.output().splitlines():
            match = _VERDICT.search(line)
            if match:
                found.append(Verdict({k: v.strip('"') for k, v in _PAIR.findall(match[1])}))
        return found

    def wait_verdict(self, timeout: float = 5.0, **expected: object) -> Verdict:
        """Wait until the latest verdict log line matches `expected`."""

        def latest() -> Verdict | None:
            lines = self.verdicts()
            return lines[-1] if lines and lines[-1].matches(**expected) else None

        try:
            found = wait_until(latest, timeout, what=f"verdict {expected}")
        except AssertionError:
            seen = [v.fields for v in self.verdicts()]
            raise AssertionError(
                f"no verdict line matching {expected} within {timeout}s; seen: {seen}"
            ) from None
        assert found is not None
        return found

    def rpc(self, *args: str) -> str:
        """kamcmd against this instance's ctl socket."""
        return subprocess.run(
            ["kamcmd", "-s", f"unix:{self.rundir / 'kamailio_ctl'}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout

    def htable_get(self, table: str, key: str) -> str | None:
        out = self.rpc("htable.get", table, key)
        match = re.search(r"value:\s*(.*)", out)
        return match[1].strip() if match else None


def proxy_defines(
    port: int, presence_port: int, redis_port: int, **extra: Define
) -> dict[str, Define]:
    """The lab's proxy defines, polling faster so tests wait less."""
    return lab_proxy_defines(port, presence_port, redis_port, **{"BREAKER_POLL_MS": 100, **extra})


def presence_defines(port: int, db: Path, **extra: Define) -> dict[str, Define]:
    defines: dict[str, Define] = {
        "LISTEN": f"udp:127.0.0.1:{port}",
        "DB_URL": quoted(f"sqlite:///{db}"),
        "CHILDREN": 2,
    }
    defines.update(extra)
    return defines


class Responder:
    """tests/kamailio/responder.py in its own process group (SIGSTOP freezes it for real)."""

    def __init__(self, workdir: Path, code: int = 200, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port_both()
        self.code = code
        self.log = workdir / f"responder-{self.port}.jsonl"
        self.proc: Proc | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> Responder:
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = Path(__file__).resolve().parent / "responder.py"
        self.proc = Proc(
            [
                sys.executable,
                str(script),
                "--port",
                str(self.port),
                "--log",
                str(self.log),
                "--code",
                str(self.code),
            ],
            self.workdir / f"responder-{self.port}.out",
        )
        wait_until(
            lambda: self.log.exists() and "ready" in self.log.read_text(),
            10,
            what="responder ready",
        )
        return self

    def freeze(self) -> None:
        assert self.proc
        self.proc.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc
        self.proc.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def requests(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [r for r in map(json.loads, lines) if "method" in r]

    def count(self, method: str | None = None, call_ids: set[str] | None = None) -> int:
        return sum(
            1
            for r in self.requests()
            if (method is None or r["method"] == method)
            and (call_ids is None or r["call_id"] in call_ids)
        )


class BreakerHash:
    """Writes the verdict hash `breaker:{name}` the way the sidecar does (HSET + PEXPIRE)."""

    def __init__(self, port: int, name: str = "presence", prefix: str = "breaker:") -> None:
        self.client = redis.Redis(
            host="127.0.0.1", port=port, decode_responses=True, socket_timeout=2
        )
        self.name = name
        self.key = f"{prefix}{{{name}}}"
        self.passive_key = f"{self.key}:passive"
        self.epoch = 0

    def set(
        self,
        state: str,
        admit: int | None = None,
        retry_after: int = 0,
        ttl_ms: int = 60_000,
        reason: str = "test",
    ) -> int:
        """Write a verdict with the next epoch; return the epoch."""
        self.epoch += 1
        if admit is None:
            admit = {"closed": 100, "open": 0}.get(state, 50)
        now = time.time()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            self.key,
            mapping={
                "state": state,
                "admit": admit,
                "epoch": self.epoch,
                "since": f"{now:.3f}",
                "reason": reason,
                "retry_after": retry_after,
                "forced": "",
                "forced_by": "",
                "forced_reason": "",
                "forced_until": "",
                "computed": state,
                "updated": f"{now:.3f}",
                "contract": 1,
            },
        )
        pipe.pexpire(self.key, ttl_ms)
        pipe.execute()
        return self.epoch

    def delete(self) -> None:
        self.client.delete(self.key)

    def passive(self) -> dict[str, int]:
        raw = self.client.hgetall(self.passive_key)
        return {str(k): int(float(v)) for k, v in raw.items()}

    def wait_passive(self, field: str, value: int, timeout: float = 5.0) -> dict[str, int]:
        """Wait until the passive hash has field == value; return the whole hash."""

        def ready() -> dict[str, int] | None:
            counters = self.passive()
            return counters if counters.get(field) == value else None

        found = wait_until(ready, timeout, what=f"{field}={value} in {self.passive_key}")
        assert found is not None
        return found


SippResult = SippRun


def run_sipp(
    scenario: str,
    target: tuple[str, int],
    calls: int,
    rate: int,
    workdir: Path,
    timeout: float = 60.0,
    limit: int | None = None,
    wrapper: Sequence[str] = (),
) -> SippResult:
    """Run one sipp UAC scenario from tests/kamailio/scenarios to completion.

    `limit` caps calls in flight (sipp -l); by default it is the rate (at least 100).
    """
    return run_sipp_file(
        SCENARIOS / f"{scenario}.xml",
        target,
        calls=calls,
        rate=rate,
        limit=limit or max(rate, 100),
        workdir=workdir,
        timeout=timeout,
        wrapper=wrapper,
    )


def udp_rx_queue(port: int) -> int:
    """Bytes waiting in the receive queue of the UDP socket bound to 127.0.0.1:port."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        local, queues = fields[1], fields[4]
        if local == f"0100007F:{port:04X}":
            total += int(queues.split(":")[1], 16)
    return total


def mwi_bucket(aor: str) -> int:
    """The bucket breaker.cfg computes for an AoR: md5 hex, its first two decimal digits."""
    digits = [c for c in hashlib.md5(aor.encode()).hexdigest() if c.isdigit()]
    return int("".join(digits[:2]))
