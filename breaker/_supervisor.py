"""Background tasks that cannot die silently.

Every loop of the sidecar (publisher, tick, probes, passive readers) runs under
`Supervisor.spawn`: an exception is logged once per type, counted in
`breaker_task_restarts_total{task}`, and the loop restarts with backoff. A task
that keeps failing shows in `/readyz` (`failing`). Stopping is bounded: a task
that ignores its cancellation is logged with its stack, never waited for forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from breaker._metrics import Metrics

log = logging.getLogger("breaker.service")

TASK_BACKOFF_START = 0.1  # a crashed background task restarts after this, doubling
TASK_BACKOFF_MAX = 5.0
TASK_HEALTHY_AFTER = 30.0  # a task that ran this long before crashing starts its backoff afresh
STOP_STEP_TIMEOUT = 1.0  # the longest a cancelled task is waited for


@dataclass
class TaskHealth:
    """Crash record of one supervised background task."""

    restarts: int = 0
    in_a_row: int = 0
    last_error: str = ""
    last_crash: float | None = None  # monotonic


class Supervisor:
    def __init__(self, metrics: Metrics, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.clock = clock
        self.health: dict[str, TaskHealth] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self.health[name] = TaskHealth()
        self._tasks.append(asyncio.create_task(self._supervise(name, body), name=name))

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop forever: an exception is logged once per type, counted, and the loop
        restarts with backoff."""
        health = self.health[name]
        counter = self.metrics.task_restarts.labels(name)
        logged: set[str] = set()
        backoff = TASK_BACKOFF_START
        while True:
            started = self.clock()
            try:
                await body()
                return
            except Exception as exc:
                error = type(exc).__name__
                now = self.clock()
                if now - started >= TASK_HEALTHY_AFTER:
                    backoff, health.in_a_row = TASK_BACKOFF_START, 0
                health.restarts += 1
                health.in_a_row += 1
                health.last_error, health.last_crash = error, now
                counter.inc()
                if error not in logged:
                    logged.add(error)
                    log.error(
                        "service.task_crashed",
                        extra={"task": name, "error": error, "detail": str(exc)[:200]},
                    )
                await asyncio.sleep(backoff)
                backoff = min(TASK_BACKOFF_MAX, backoff * 2)

    def failing(self) -> list[str]:
        """Tasks that crashed again and again lately."""
        now = self.clock()
        return sorted(
            name
            for name, h in self.health.items()
            if h.in_a_row >= 2
            and h.last_crash is not None
            and now - h.last_crash < 2 * TASK_BACKOFF_MAX + 1
        )

    async def cancel(self, keep: frozenset[str] = frozenset()) -> None:
        """Cancel every task but those named in `keep`; bounded (STOP_STEP_TIMEOUT)."""
        doomed = [t for t in self._tasks if t.get_name() not in keep]
        self._tasks = [t for t in self._tasks if t.get_name() in keep]
        for task in doomed:
            task.cancel()
        if not doomed:
            return
        _, stuck = await asyncio.wait(doomed, timeout=STOP_STEP_TIMEOUT)
        for task in stuck:
            log.error(
                "service.task_stuck",
                extra={"task": task.get_name(), "stack": repr(task.get_stack(limit=5))},
            )
