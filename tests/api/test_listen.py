"""The API socket `breaker serve` binds before uvicorn takes it over."""

from __future__ import annotations

import socket

from breaker.cli._serve import _listen


def test_listener_disables_nagle_so_responses_do_not_wait_for_delayed_acks() -> None:
    sock = _listen("127.0.0.1", 0)
    try:
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay == 1, "without TCP_NODELAY every API answer waits ~40 ms for an ACK"
    finally:
        sock.close()


def test_listener_binds_ipv6_loopback() -> None:
    sock = _listen("::1", 0)
    try:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[0] == "::1"
    finally:
        sock.close()
