"""Redis adapter: writes verdicts and events atomically, reads history and passive counters."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.core import Event, Verdict
from breaker.store._contract import (
    event_from_stream,
    event_json,
    events_channel,
    guard_runs_key,
    log_key,
    passive_key,
    state_key,
    stream_fields,
    verdict_fields,
)

# Refuse a write older than what is stored, then write hash, TTL, audit and event
# in one atomic step. ARGV: epoch, ttl_ms, log_maxlen, channel, nfields, fields...,
# nevents, then per event: nkv, kv..., json. A refresh (only `updated`) of a hash
# that is gone answers 2 so the caller sends the whole verdict instead.
_WRITE_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], 'epoch')
local epoch = tonumber(ARGV[1])
if stored and tonumber(stored) and tonumber(stored) > epoch then
  return {0, tonumber(stored)}
end
local nf = tonumber(ARGV[5])
if nf == 2 and not stored then
  return {2, -1}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6, 5 + nf))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local i = 6 + nf
local nevents = tonumber(ARGV[i])
i = i + 1
for _ = 1, nevents do
  local nkv = tonumber(ARGV[i])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + 1, i + nkv))
  i = i + nkv + 1
  redis.call('PUBLISH', ARGV[4], ARGV[i])
  i = i + 1
end
return {1, epoch}
"""


@dataclass(frozen=True, slots=True)
class WriteItem:
    verdict: Verdict
    events: Sequence[Event]
    ttl: float  # seconds
    refresh_only: bool = False  # verdict unchanged since the last write: bump `updated` and TTL


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    name: str
    written: bool
    stored_epoch: int  # the epoch now in Redis (ours when written)
    missing: bool = False  # a refresh found no hash: write the whole verdict


def connect(cfg: RedisConfig) -> aioredis.Redis:
    """A client with short timeouts and no hidden retries: the caller owns backoff."""
    kwargs: dict[str, Any] = {
        "socket_timeout": cfg.command_timeout,
        "socket_connect_timeout": cfg.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
        "health_check_interval": 0,
        "client_name": "breaker",
    }
    if cfg.url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if cfg.ssl_ca_file:
            kwargs["ssl_ca_certs"] = str(cfg.ssl_ca_file)
        if cfg.ssl_certfile:
            kwargs["ssl_certfile"] = str(cfg.ssl_certfile)
        if cfg.ssl_keyfile:
            kwargs["ssl_keyfile"] = str(cfg.ssl_keyfile)
    password = _password(cfg)
    if password is not None:
        kwargs["password"] = password
    client: aioredis.Redis = aioredis.Redis.from_url(cfg.url, **kwargs)
    return client


def _password(cfg: RedisConfig) -> str | None:
    if cfg.password_file is not None:
        return cfg.password_file.read_text(encoding="utf-8").strip()
    return os.environ.get("BREAKER_REDIS_PASSWORD")


class RedisStore:
    """Talks to one Redis; every method raises StoreUnavailable on any Redis failure."""

    def __init__(self, cfg: RedisConfig, client: aioredis.Redis | None = None) -> None:
        self.cfg = cfg
        self.prefix = cfg.key_prefix
        self.client = client or connect(cfg)
        self._write = self.client.register_script(_WRITE_SCRIPT)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self._call(self.client.ping())

    async def write(self, items: Sequence[WriteItem], now: float) -> list[WriteOutcome]:
        """Write several breakers in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for item in items:
                name = item.verdict.name
                keys = [state_key(self.prefix, name), log_key(self.prefix, name)]
                await self._write(keys=keys, args=self._write_args(item, now), client=pipe)
            replies = await self._call(pipe.execute())
        return [
            WriteOutcome(
                item.verdict.name, int(reply[0]) == 1, int(reply[1]), missing=int(reply[0]) == 2
            )
            for item, reply in zip(items, replies, strict=True)
        ]

    def _write_args(self, item: WriteItem, now: float) -> list[str | int]:
        verdict, events = item.verdict, item.events
        if item.refresh_only and not events:
            fields = {"updated": f"{now:.3f}"}
        else:
            fields = verdict_fields(verdict, now)
        args: list[str | int] = [
            verdict.epoch,
            max(1, int(item.ttl * 1000)),
            self.cfg.log_maxlen,
            events_channel(self.prefix),
            len(fields) * 2,
        ]
        for key, value in fields.items():
            args += [key, value]
        args.append(len(events))
        for event in events:
            flat = stream_fields(event)
            args.append(len(flat) * 2)
            for key, value in flat.items():
                args += [key, value]
            args.append(event_json(event))
        return args

    async def read_state(self, name: str) -> dict[str, str]:
        result: dict[str, str] = await self._call(self.client.hgetall(state_key(self.prefix, name)))
        return result

    async def history(
        self, name: str, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first. `since` is unix seconds; stream IDs carry write time."""
        low = f"{int(since * 1000)}-0" if since is not None else "-"
        entries = await self._call(
            self.client.xrevrange(log_key(self.prefix, name), "+", low, count=limit)
        )
        events = [event_from_stream(entry_id, fields) for entry_id, fields in entries]
        if since is not None:
            events = [e for e in events if (e.get("at") or 0) >= since]
        return events

    async def read_passive(self, name: str) -> tuple[int, int] | None:
        fields = await self._call(
            self.client.hmget(passive_key(self.prefix, name), "forwarded", "failed")
        )
        if fields[0] is None:
            return None
        return int(fields[0] or 0), int(fields[1] or 0)

    async def read_guard_runs(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """Every breaker's `breaker guard` outcome counts, in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(guard_runs_key(self.prefix, name))
            replies = await self._call(pipe.execute())
        counts: dict[str, dict[str, int]] = {}
        for name, fields in zip(names, replies, strict=True):
            counts[name] = {k: int(v) for k, v in fields.items() if str(v).isdigit()}
        return counts

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py turns a cancellation mid-command into a connection error;
                # give the cancellation back so shutdown is not swallowed.
                raise asyncio.CancelledError from exc
            raise StoreUnavailable(f"Redis unavailable: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    """Error text without the URL: it may carry a password."""
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0][:200]
