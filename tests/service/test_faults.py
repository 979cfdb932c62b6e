"""Faults that must not make the breaker lie: garbage in Redis, crashing tasks, Redis
refusals, foreign edits and restarts. Real redis-server, scripted probes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from breaker.api import TokenRegistry, create_app
from breaker.core import State
from breaker.service import Service
from testbed.procs import free_port
from testbed.redis import Redis
from testbed.waiting import eventually
from tests.support.scripted import ScriptedProbes, settings_for

KEY = "breaker:{presence}"


def field(server: Redis, name: str, key: str = KEY) -> str:
    try:
        return server.cli("HGET", key, name)
    except Exception:
        return ""


def metric(service: Service, name: str, **labels: str) -> float:
    return service.metrics.registry.get_sample_value(name, labels) or 0.0


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


@pytest.fixture
async def service(redis_server: Redis) -> AsyncIterator[Service]:
    svc = Service(settings_for(redis_server.url), probe_factory=ScriptedProbes())
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()


# ---------------------------------------------------------------- garbage and crashes


async def test_garbage_passive_counters_are_ignored_and_never_latch_open(
    redis_server: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(redis_server.url, passive_failure_ratio=0.5, passive_min_requests=1)
    svc = Service(settings, probe_factory=ScriptedProbes())
    passive = "breaker:{presence}:passive"
    redis_server.cli("HSET", passive, "forwarded", "0", "failed", "0")
    await svc.start()
    try:
        rt = svc.runtimes["presence"]
        n = 0

        def failing_interval() -> bool:
            nonlocal n
            n += 10
            redis_server.cli("HSET", passive, "forwarded", str(n), "failed", str(n))
            return rt.passive_failing

        await eventually(failing_interval, 5, what="passive failures to count")
        redis_server.cli("HSET", passive, "forwarded", "lots")
        await eventually(lambda: not rt.passive_failing, 3, what="garbage to clear passive_failing")
        await eventually(
            lambda: svc.status("presence").verdict.state is not State.OPEN,
            5,
            what="the breaker to leave open with healthy probes",
        )
        assert len(records(caplog, "store.bad_data_ignored")) == 1, "expected one log line"
        assert svc.tasks["passive:presence"].restarts == 0, "garbage must not crash the loop"
    finally:
        await svc.stop()


async def test_non_float_since_in_the_stored_hash_does_not_stop_the_publisher(
    redis_server: Redis,
) -> None:
    redis_server.cli("HSET", KEY, "since", "yesterday", "epoch", "3", "state", "closed")
    redis_server.cli("HSET", KEY, "forced", "open", "forced_until", "not-a-time")
    svc = Service(settings_for(redis_server.url), probe_factory=ScriptedProbes())
    await svc.start()
    try:
        await eventually(lambda: field(redis_server, "contract") == "1", what="a full write")
        first = float(field(redis_server, "updated"))
        await eventually(
            lambda: float(field(redis_server, "updated") or 0) > first, what="writes to go on"
        )
        assert field(redis_server, "since") != "yesterday" and field(redis_server, "forced") == ""
        assert svc.failing_tasks() == [], f"no task may fail: {svc.tasks}"
    finally:
        await svc.stop()


async def test_a_task_that_keeps_crashing_is_restarted_counted_and_reported(
    redis_server: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(redis_server.url, passive_failure_ratio=0.5)
    svc = Service(settings, probe_factory=ScriptedProbes())

    async def broken(name: str) -> tuple[int, int] | None:
        raise RuntimeError("bug in the passive reader")

    svc.store.read_passive = broken  # type: ignore[method-assign]
    await svc.start()
    try:
        await eventually(
            lambda: "passive:presence" in svc.failing_tasks(), 5, what="the task to show failing"
        )
        restarts = metric(svc, "breaker_task_restarts_total", task="passive:presence")
        assert restarts >= 2, f"expected the crashes counted, saw {restarts}"
        crashed = records(caplog, "service.task_crashed")
        assert len(crashed) == 1, f"expected one log line per error type, saw {len(crashed)}"
        assert getattr(crashed[0], "error", "") == "RuntimeError"
        assert not svc.runtimes["presence"].passive_failing, "a crash must not latch a failure"
        app = create_app(svc, TokenRegistry([]), True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503, f"expected 503, saw {ready.status_code}"
        assert ready.json()["tasks_failing"] == ["passive:presence"], ready.json()
        probes_before = svc.status("presence").probes_total
        await eventually(lambda: svc.status("presence").probes_total > probes_before + 3)
    finally:
        await svc.stop()


# ---------------------------------------------------------------- foreign edits


async def test_a_foreign_edit_of_the_verdict_is_repaired_within_one_interval(
    service: Service, redis_server: Redis
) -> None:
    await eventually(lambda: field(redis_server, "state") == "closed", what="first write")
    await asyncio.sleep(0.3)  # let the publisher settle into refresh-only writes
    redis_server.cli("HSET", KEY, "state", "open", "admit", "0")
    edited = time.monotonic()
    interval = service.runtimes["presence"].cfg.interval
    await eventually(lambda: field(redis_server, "state") == "closed", 2, what="repair")
    took = time.monotonic() - edited
    assert took <= interval + 0.5, f"expected a repair within one interval, took {took:.2f}s"
    assert field(redis_server, "admit") == "100"


async def test_a_wrong_type_key_of_one_breaker_does_not_stop_the_others(
    redis_server: Redis,
) -> None:
    settings = settings_for(redis_server.url)
    other = settings.breakers[0].model_copy(update={"name": "other"})
    settings = settings.model_copy(update={"breakers": (*settings.breakers, other)})
    redis_server.cli("SET", "breaker:{other}", "1")
    svc = Service(settings, probe_factory=ScriptedProbes())
    await svc.start()
    try:
        await eventually(lambda: field(redis_server, "state") == "closed", what="presence")
        await eventually(
            lambda: field(redis_server, "state", "breaker:{other}") == "closed", what="repair"
        )
        # the script wrote both; the publisher marks Redis up once it has read the replies
        await eventually(lambda: svc.redis_up, what="redis_up despite the broken key")
    finally:
        await svc.stop()


# ---------------------------------------------------------------- Redis refusals


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda r: r.cli("REPLICAOF", "127.0.0.1", str(free_port())), "readonly"),
        (lambda r: r.cli("CONFIG", "SET", "maxmemory", "1"), "oom"),
        (
            lambda r: r.cli("ACL", "SETUSER", "default", "-evalsha", "-eval", "-script"),
            "noperm",
        ),
    ],
    ids=["read-only replica", "out of memory", "no permission"],
)
async def test_redis_refusals_are_classified_logged_once_and_redis_up_does_not_flap(
    redis_server: Redis, caplog: pytest.LogCaptureFixture, setup: object, kind: str
) -> None:
    setup(redis_server)  # type: ignore[operator]
    svc = Service(settings_for(redis_server.url), probe_factory=ScriptedProbes())
    await svc.start()
    try:
        await eventually(
            lambda: metric(svc, "breaker_redis_errors_total", op="write", kind=kind) >= 3,
            10,
            what=f"repeated {kind} refusals",
        )
        assert not svc.redis_up, "redis_up must stay 0 while writes are refused"
        lines = records(caplog, "store.unavailable")
        assert len(lines) == 1, f"expected one log line, saw {[r.__dict__ for r in lines]}"
        assert getattr(lines[0], "kind", "") == kind and getattr(lines[0], "hint", "")
        assert not records(caplog, "store.connected"), "never claimed connected"
    finally:
        await svc.stop()
