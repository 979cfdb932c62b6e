"""Real processes for tests: the shared helpers in testbed/, under the names tests use."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence

from testbed.procs import REPO, Child, port_open
from testbed.procs import free_port as free_port_both
from testbed.redis import Redis
from testbed.waiting import wait_until

__all__ = [
    "Proc",
    "RedisServer",
    "free_port",
    "free_port_both",
    "port_open",
    "run_ok",
    "wait_until",
]

Proc = Child
RedisServer = Redis


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A loopback port; `kind` is accepted for old callers, every port is free for both."""
    del kind
    return free_port_both(host)


def run_ok(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command from the checkout to completion; fail with its output unless it exits 0."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, (
        f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done
