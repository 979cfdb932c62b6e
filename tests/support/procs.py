"""Real processes for tests: the shared helpers in testbed/, under the names tests use."""

from __future__ import annotations

import socket

from testbed.procs import Child, port_open
from testbed.procs import free_port as free_port_both
from testbed.redis import Redis
from testbed.waiting import wait_until

__all__ = ["Proc", "RedisServer", "free_port", "free_port_both", "port_open", "wait_until"]

Proc = Child
RedisServer = Redis


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A loopback port; `kind` is accepted for old callers, every port is free for both."""
    del kind
    return free_port_both(host)
