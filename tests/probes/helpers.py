"""Shared helpers for probe tests: configs with short timeouts, message forging."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from typing import Any

from breaker._config import BreakerConfig
from breaker.probes import ProbeResult
from breaker.probes._sipmsg import SipRequest, build_response

TIMEOUT = 0.3  # short, so timeouts are quick; loopback answers take about a millisecond
SLACK = 0.25  # how late a timed-out check may return


def make_cfg(target: str, **overrides: Any) -> BreakerConfig:
    """A config with a short timeout; `slow` defaults to the timeout so that only tests
    about slowness depend on how fast a busy CI machine answers loopback."""
    values: dict[str, Any] = {
        "name": "t",
        "target": target,
        "timeout": TIMEOUT,
        "interval": 0.5,
        "slow": TIMEOUT,
    }
    values.update(overrides)
    return BreakerConfig(**values)


def explain(result: ProbeResult) -> str:
    return (
        f"seen: ok={result.ok} reason={result.reason!r} rtt={result.rtt} detail={result.detail!r}"
    )


def expect(result: ProbeResult, reason: str) -> None:
    """Assert the reason (and ok-ness that goes with it), saying what was seen."""
    assert result.reason == reason, f"expected reason {reason!r}; {explain(result)}"
    assert result.ok is (reason == "ok"), f"expected ok={reason == 'ok'}; {explain(result)}"


def forged(
    request: SipRequest,
    status: int = 200,
    *,
    branch: str | None = None,
    call_id: str | None = None,
    cseq: str | None = None,
) -> bytes:
    """A response to `request` with some of the echoed fields replaced."""
    headers = []
    for name, value in request.headers:
        if name == "via" and branch is not None:
            value = re.sub(r"branch=[^;,]+", f"branch={branch}", value, count=1)
        elif name == "call-id" and call_id is not None:
            value = call_id
        elif name == "cseq" and cseq is not None:
            value = cseq
        headers.append((name, value))
    return build_response(dataclasses.replace(request, headers=tuple(headers)), status, to_tag="x")


async def eventually(predicate: Callable[[], object], within: float = 2.0, what: str = "") -> None:
    """Poll a condition until it holds; fail saying `what` after the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)
