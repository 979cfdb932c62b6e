"""The Python API for jobs written in Python: allowed(), the clients, and `async with Guard`."""

from __future__ import annotations

import asyncio
import time

import pytest

from breaker._errors import Forbidden, UnknownBreaker, Unreachable
from breaker.client import AsyncClient, Client, GuardRefused, GuardStopped, allowed, allowed_sync
from breaker.guard import ExitCode, Guard
from testbed.procs import free_port
from tests.cli.harness import ALICE, VIEWER, Stack


async def test_allowed_follows_the_breaker(sidecar: Stack) -> None:
    assert await allowed("presence", key="sip:alice@example.net", url=sidecar.url) is True
    sidecar.force("presence", "open", reason="api test")
    assert await allowed("presence", key="sip:alice@example.net", url=sidecar.url) is False
    assert allowed_sync("presence", url=sidecar.url) is False
    assert allowed_sync("mwi", url=sidecar.url) is True


async def test_allowed_raises_when_it_cannot_tell(sidecar: Stack) -> None:
    with pytest.raises(Unreachable, match="cannot reach the sidecar"):
        await allowed("presence", url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnknownBreaker, match="unknown breaker 'nope'"):
        allowed_sync("nope", url=sidecar.url)


async def test_clients_force_release_and_read_history_as_the_token_named(sidecar: Stack) -> None:
    async with AsyncClient(sidecar.url, ALICE) as api:
        forced = await api.force("mwi", "open", 300, "api drill")
        released = await api.release("mwi")
        events = await api.history("mwi", since=60)
    assert forced.forced is not None and forced.forced.by == "alice"
    assert released.forced is None
    kinds = [(e.event, e.actor) for e in events if e.event != "transition"][:2]
    assert kinds == [("release", "alice"), ("force", "alice")], "newest first from the API"
    with Client(sidecar.url, VIEWER) as api, pytest.raises(Forbidden, match="role read"):
        api.force("mwi", "open", 300, "not allowed")
    assert VIEWER not in repr(Client(sidecar.url, VIEWER))


async def test_guard_runs_the_block_while_closed(sidecar: Stack) -> None:
    ran = False
    async with Guard("presence", "py-job", redis_url=sidecar.redis.url):
        ran = True
        assert sidecar.redis.cli("EXISTS", "breaker:{presence}:guard:py-job") == "1"
    assert ran
    assert sidecar.redis.cli("EXISTS", "breaker:{presence}:guard:py-job") == "0", "released"


async def test_guard_refuses_while_open_and_while_another_instance_runs(sidecar: Stack) -> None:
    async with Guard("presence", "py-job", redis_url=sidecar.redis.url):
        with pytest.raises(GuardRefused) as locked:
            async with Guard("presence", "py-job", redis_url=sidecar.redis.url):
                pytest.fail("a second instance must not run")
    assert locked.value.exit_code == ExitCode.LOCKED
    sidecar.force("presence", "open", reason="py refuse")
    with pytest.raises(GuardRefused) as refused:
        async with Guard("presence", "py-job", redis_url=sidecar.redis.url):
            pytest.fail("must not run while open")
    assert refused.value.exit_code == ExitCode.OPEN
    assert "presence is open (forced: py refuse)" in str(refused.value)


async def test_guard_cancels_the_block_when_the_breaker_opens(sidecar: Stack) -> None:
    cancelled = False
    with pytest.raises(GuardStopped) as stopped:
        async with Guard("presence", "py-job", redis_url=sidecar.redis.url, say=lambda _: None):
            sidecar.force("presence", "open", reason="py stop")
            opened = time.monotonic()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled = True
                raise
    took = time.monotonic() - opened
    assert cancelled, "the block is cancelled, so its cleanup runs"
    assert stopped.value.exit_code == ExitCode.STOPPED_OPEN
    assert took < 2.5, f"expected the block cancelled on the event, took {took:.1f}s"
    assert sidecar.redis.cli("EXISTS", "breaker:{presence}:guard:py-job") == "0"
    assert asyncio.current_task().cancelling() == 0, "the guard's cancellation is undone"  # type: ignore[union-attr]
