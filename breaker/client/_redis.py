"""Reading the Redis contract as a consumer: the verdict hash and the events channel.

Key names and the client come from breaker.store, so the consumer side cannot drift
from what the sidecar writes. Nothing here raises on a Redis failure: a failed read
is a Reading whose state is unknown, which is what the guard's policy decides about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable

from pydantic import ValidationError
from redis.exceptions import RedisError

from breaker._config import RedisConfig, describe_validation_error
from breaker._errors import ConfigError
from breaker.core import State
from breaker.core._guard import Reading
from breaker.store import DEFAULT_PREFIX as DEFAULT_PREFIX  # the client's default, re-exported
from breaker.store import RedisClient, connect, events_channel, state_key

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
RESUBSCRIBE_DELAY = 0.5


def default_redis_url() -> str:
    return os.environ.get("BREAKER_REDIS_URL", "").strip() or DEFAULT_REDIS_URL


def redis_client(url: str, prefix: str = DEFAULT_PREFIX, timeout: float = 1.0) -> RedisClient:
    """A client with short timeouts and no hidden retries (BREAKER_REDIS_PASSWORD applies)."""
    try:
        cfg = RedisConfig(
            url=url, key_prefix=prefix, connect_timeout=timeout, command_timeout=timeout
        )
    except ValidationError as exc:
        raise ConfigError(f"redis: {describe_validation_error(exc)}") from None
    return connect(cfg)


def describe(exc: BaseException) -> str:
    """Error text without a URL (it may carry a password), one line."""
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0][:200]


def check_cancelled(exc: BaseException | None = None) -> None:
    """Raise CancelledError if this task has been asked to stop.

    redis-py can turn a cancellation that lands mid-command into a connection error,
    or swallow it and reconnect; call this after every Redis await so a stop request
    is never lost (a loop that lost it would run for ever).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class VerdictReader:
    """Reads `breaker:{NAME}`. A missing hash means the sidecar is dead or cut off."""

    def __init__(self, client: RedisClient, name: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.client = client
        self.name = name
        self.key = state_key(prefix, name)

    async def read(self) -> Reading:
        try:
            raw = await self.client.hgetall(self.key)
        except (RedisError, OSError) as exc:
            check_cancelled(exc)
            return Reading(self.name, None, detail=f"Redis unreachable: {describe(exc)}")
        check_cancelled()
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if not fields:
            return Reading(
                self.name,
                None,
                detail=f"no verdict in Redis at {self.key}: sidecar down, or wrong name or prefix",
            )
        try:
            return Reading(
                self.name,
                State(fields["state"]),
                admit=int(fields.get("admit", "0")),
                reason=fields.get("reason", ""),
                retry_after=int(fields.get("retry_after", "0") or 0),
            )
        except (KeyError, ValueError):
            return Reading(self.name, None, detail=f"unreadable verdict at {self.key}")


class EventFeed:
    """Calls `on_event` for every message about `name` on `breaker:events`, and once
    after each (re)subscription (events may have been missed meanwhile). Reconnects
    forever; the caller polls as well, so a dead feed only costs latency."""

    def __init__(
        self,
        client: RedisClient,
        name: str | None,
        on_event: Callable[[], None],
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.client = client
        self.name = name  # None: every breaker
        self.on_event = on_event
        self.channel = events_channel(prefix)
        self.ready = asyncio.Event()  # set after the first attempt, subscribed or not
        self.subscribed = False

    async def run(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                # A Cluster client must know the slots before its pubsub picks a node.
                await self.client.initialize()
                await pubsub.subscribe(self.channel)
                check_cancelled()
                self.subscribed = True
                self.ready.set()
                self.on_event()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    check_cancelled()
                    if message is not None and self._concerns_us(message.get("data")):
                        self.on_event()
            except (RedisError, OSError) as exc:
                check_cancelled(exc)
            finally:
                self.subscribed = False
                self.ready.set()
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
            check_cancelled()
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    def _concerns_us(self, data: object) -> bool:
        if self.name is None:
            return True
        try:
            event = json.loads(data) if isinstance(data, str | bytes) else None
        except ValueError:
            return True  # unreadable: re-read to be safe
        return not isinstance(event, dict) or event.get("name") == self.name
