"""What the HTTP adapter asks of the service: this and nothing more.

The API reads snapshots and forces through these methods, never the service's runtimes,
pools or store, so the service may change how it keeps them without touching the API.
`breaker.service.Service` satisfies it; the routes and the status page take any object that does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from breaker.core import State, Verdict
from breaker.probes import ProbeResult
from breaker.service import BreakerSnapshot, PoolSnapshot


class ApiService(Protocol):
    @property
    def redis_up(self) -> bool: ...

    @property
    def wall(self) -> Callable[[], float]:
        """Unix seconds, as the service stamps verdicts and events."""
        ...

    @property
    def registry(self) -> CollectorRegistry: ...

    def names(self) -> list[str]:
        """The breakers, sorted (pools not included)."""
        ...

    def pool_names(self) -> list[str]: ...

    def status(self, name: str) -> BreakerSnapshot: ...

    def pool_status(self, name: str) -> PoolSnapshot: ...

    def pool_of(self, member: str) -> str | None: ...

    def verdict_of(self, name: str) -> Verdict: ...

    def max_force_ttl(self) -> float: ...

    def recent_probes(self, name: str) -> list[ProbeResult]: ...

    def recent_events(self, name: str) -> list[dict[str, Any]]: ...

    async def history(self, name: str, after: float | None, limit: int) -> list[dict[str, Any]]:
        """From Redis; raises StoreUnavailable while it is away."""
        ...

    def failing_tasks(self) -> list[str]: ...

    def force(
        self, name: str, state: State, ttl: float, actor: str, reason: str
    ) -> BreakerSnapshot: ...

    def release(self, name: str, actor: str) -> BreakerSnapshot: ...
