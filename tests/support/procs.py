"""Real processes for tests: ephemeral loopback ports, temp dirs, always cleaned up."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from lab._procs import Child

T = TypeVar("T")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; free for TCP and UDP alike in practice."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_both(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (SIP listens on both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM, host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both UDP and TCP")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll until predicate returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = predicate()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
        last = predicate()
    return last


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


# One process wrapper for the product's lab and the tests: own session, SIGCONT before
# SIGTERM (a frozen process cannot act on it), SIGKILL for leftovers in the group.
Proc = Child


class RedisServer:
    """A throw-away redis-server on an ephemeral loopback port."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        """`extra`: more redis-server options, e.g. "--replicaof", host, port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        argv += extra
        self.proc = Proc(argv, self.workdir / "redis.log")
        wait_until(lambda: port_open(self.port), 10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def cli(self, *args: str) -> str:
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        return subprocess.run(
            argv + list(args), capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()


@contextlib.contextmanager
def running(proc_factory: Callable[[], Proc]) -> Iterator[Proc]:
    proc = proc_factory()
    try:
        yield proc
    finally:
        proc.stop()
