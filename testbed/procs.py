"""Child processes on loopback: own process group, logged to a file, always stopped.

Every piece the lab, the benchmarks and the tests run is a `Child`: started in its own
session so a SIGSTOP or a SIGTERM reaches all of its forks, logging to a file, and
stopped with a bounded SIGCONT → SIGTERM → SIGKILL sequence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol, TypeVar

from breaker._errors import BreakerError

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]  # the checkout: testbed/ sits beside breaker/


class LabError(BreakerError):
    """A lab, benchmark or test piece could not be started or measured."""


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: run `make setup` (Debian: kamailio, "
            "kamailio-redis-modules, kamailio-presence-modules, kamailio-sqlite-modules, "
            "kamailio-utils-modules, redis-server, sip-tester, wrk)"
        )


def free_port(host: str = LOOPBACK) -> int:
    """A loopback port free for both UDP and TCP right now (SIP listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise LabError("no loopback port free for both UDP and TCP")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


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

    def poll(self) -> int | None:
        return self.popen.poll()

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
            raise LabError(f"{name} not ready after {timeout:g}s:\n{child.tail()}")
        time.sleep(0.05)


class Started:
    """A wrapper whose `start()` sets `proc`: its pid, freeze/thaw and an idempotent stop."""

    proc: Child | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def freeze(self) -> None:
        assert self.proc is not None, "not started"
        self.proc.freeze()

    def thaw(self) -> None:
        assert self.proc is not None, "not started"
        self.proc.thaw()

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


@contextlib.contextmanager
def stopping(part: S) -> Iterator[S]:
    """`with stopping(Redis(dir).start()) as redis:` stops it however the block ends."""
    try:
        yield part
    finally:
        part.stop()
