"""A throw-away redis-server on a loopback port: no persistence, optionally a password."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Self

from testbed.procs import LOOPBACK, Child, Started, free_port, port_open
from testbed.waiting import wait_until


class Redis(Started):
    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.proc: Child | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/0"

    def start(self, *extra: str) -> Self:
        """`extra`: more redis-server options, e.g. "--replicaof", host, port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.workdir)]
        if self.password:
            argv += ["--requirepass", self.password]
        argv += extra
        self.proc = Child(argv, self.workdir / "redis.log")
        wait_until(lambda: port_open(self.port), 10, f"redis-server on port {self.port}")
        return self

    def cli(self, *args: str) -> str:
        argv = ["redis-cli", "-p", str(self.port)]
        if self.password:
            argv += ["--no-auth-warning", "-a", self.password]
        return subprocess.run(
            argv + list(args), capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
