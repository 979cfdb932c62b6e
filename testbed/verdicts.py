"""The verdict on both sides of Redis: Kamailio's log line reading it, and a writer of it.

Kamailio logs `event=breaker.verdict name=presence state=open admit=0 epoch=7 …` each
time it enforces a new verdict; `parse_verdict` is the one reader of that line. The
writer stores `breaker:{name}` with the sidecar's own encoder (`store._contract`), for
runs that drive Kamailio without a sidecar.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from breaker.core import State, Verdict
from breaker.store._contract import DEFAULT_PREFIX, passive_key, state_key, verdict_fields
from testbed.procs import LOOPBACK
from testbed.waiting import wait_until

T = TypeVar("T")

_LINE = re.compile(r"event=breaker\.verdict (.*)$")
_PAIR = re.compile(r'(\w+)=("[^"]*"|\S*)')


@dataclass(frozen=True)
class LoggedVerdict:
    """One `event=breaker.verdict` log line, as its key=value fields."""

    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def matches(self, **expected: object) -> bool:
        return all(self.fields.get(k) == str(v) for k, v in expected.items())


def parse_verdict(line: str) -> LoggedVerdict | None:
    match = _LINE.search(line)
    if match is None:
        return None
    return LoggedVerdict({k: v.strip('"') for k, v in _PAIR.findall(match[1])})


def logged_verdicts(lines: Iterable[str]) -> list[LoggedVerdict]:
    return [v for v in map(parse_verdict, lines) if v is not None]


class VerdictWriter:
    """Writes the verdict hash `breaker:{name}` the way the sidecar does (HSET + PEXPIRE).

    `reason`, `retry_after` (when not closed) and `ttl_ms` are the defaults of `set`.
    """

    def __init__(
        self,
        port: int,
        name: str = "presence",
        prefix: str = DEFAULT_PREFIX,
        *,
        reason: str = "test",
        retry_after: int = 0,
        ttl_ms: int = 60_000,
    ) -> None:
        self.client = redis.Redis(host=LOOPBACK, port=port, decode_responses=True, socket_timeout=2)
        self.name = name
        self.reason = reason
        self.retry_after = retry_after
        self.ttl_ms = ttl_ms
        self.key = state_key(prefix, name)
        self.passive_key = passive_key(prefix, name)
        self.epoch = 0

    def set(
        self,
        state: str,
        admit: int | None = None,
        retry_after: int | None = None,
        ttl_ms: int | None = None,
        reason: str | None = None,
    ) -> int:
        """Write a verdict with the next epoch; return the epoch."""
        self.epoch += 1
        if admit is None:
            admit = {"closed": 100, "open": 0}.get(state, 50)
        now = time.time()
        verdict = Verdict(
            name=self.name,
            state=State(state),
            admit=admit,
            epoch=self.epoch,
            since=now,
            reason=_default(reason, self.reason),
            retry_after=_default(retry_after, 0 if state == "closed" else self.retry_after),
            computed=State(state),
            force=None,
        )
        pipe = self.client.pipeline(transaction=True)
        fields: dict[Any, Any] = verdict_fields(verdict, now)  # redis-py's Mapping is invariant
        pipe.hset(self.key, mapping=fields)
        pipe.pexpire(self.key, _default(ttl_ms, self.ttl_ms))
        pipe.execute()
        return self.epoch

    def delete(self) -> None:
        self.client.delete(self.key)

    def close(self) -> None:
        self.client.close()

    def passive(self) -> dict[str, int]:
        raw = self.client.hgetall(self.passive_key)
        return {str(k): int(float(v)) for k, v in raw.items()}

    def wait_passive(self, field: str, value: int, timeout: float = 5.0) -> dict[str, int]:
        """Wait until the passive hash has field == value; return the whole hash."""

        def ready() -> dict[str, int] | None:
            counters = self.passive()
            return counters if counters.get(field) == value else None

        return wait_until(ready, timeout, f"{field}={value} in {self.passive_key}")


def _default(value: T | None, default: T) -> T:
    return default if value is None else value
