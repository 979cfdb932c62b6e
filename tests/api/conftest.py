"""A running service (scripted probes, real Redis) for the API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from breaker.service import Service
from testbed.redis import Redis
from tests.support.scripted import ScriptedProbes, settings_for


@pytest.fixture
async def service(redis_server: Redis) -> AsyncIterator[Service]:
    svc = Service(settings_for(redis_server.url, slow_start=60.0), probe_factory=ScriptedProbes())
    await svc.start()
    try:
        yield svc
    finally:
        await svc.stop()
