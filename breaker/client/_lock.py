"""The single-instance lock of `breaker guard`: one job at a time, across hosts.

A redis-py Lock with a TTL, renewed while the job runs; like the readers in _redis.py
it never raises on a Redis failure, it answers LockState.UNKNOWN and the guard's policy
decides.
"""

from __future__ import annotations

import contextlib
from enum import StrEnum

from redis.exceptions import LockNotOwnedError, RedisError

from breaker.client._redis import check_cancelled
from breaker.store import RedisClient


class LockState(StrEnum):
    HELD = "held"
    BUSY = "busy"  # another instance holds it
    UNKNOWN = "unknown"  # Redis could not say


class JobLock:
    """One instance at a time: redis-py's Lock with a TTL, renewed while the job runs.

    If the holder dies (even SIGKILL) the key expires after `ttl` by itself.
    """

    def __init__(self, client: RedisClient, key: str, ttl: float) -> None:
        self.key = key
        self.ttl = ttl
        self._client = client
        self._lock = client.lock(key, timeout=ttl, blocking=False, thread_local=False)
        self._token: bytes | None = None

    @property
    def held(self) -> bool:
        return self._token is not None

    async def acquire(self) -> LockState:
        """Take the lock, or take it back (same token) after it expired while Redis was away."""
        try:
            ok = await self._lock.acquire(blocking=False, token=self._token)
        except (RedisError, OSError) as exc:
            check_cancelled(exc)
            return LockState.UNKNOWN
        check_cancelled()
        if not ok:
            self._token = None
            return LockState.BUSY
        self._token = self._lock.local.token
        return LockState.HELD

    async def renew(self) -> LockState:
        """Reset the TTL; if the key vanished meanwhile, take it again if nobody else did."""
        if self._token is None:
            return await self.acquire()
        try:
            await self._lock.reacquire()
        except LockNotOwnedError:
            return await self.acquire()
        except (RedisError, OSError) as exc:
            check_cancelled(exc)
            return LockState.UNKNOWN
        check_cancelled()
        return LockState.HELD

    async def ttl_left(self) -> float | None:
        """Seconds until someone else's lock expires, for the message; None if unknown."""
        try:
            ms = int(await self._client.pttl(self.key))
        except (RedisError, OSError) as exc:
            check_cancelled(exc)
            return None
        return ms / 1000 if ms > 0 else None

    async def release(self) -> None:
        """Best effort: a lock we no longer hold, or an unreachable Redis, is not an error."""
        if self._token is None:
            return
        self._token = None
        with contextlib.suppress(RedisError, OSError):
            await self._lock.release()
