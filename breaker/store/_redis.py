"""Redis adapter: writes verdicts and events atomically, reads history and passive counters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)

from breaker._config import RedisConfig
from breaker._errors import StoreUnavailable
from breaker.core import Event, Verdict
from breaker.store._connect import connect
from breaker.store._contract import (
    CONTRACT_VERSION,
    OWNED_FIELDS,
    digest,
    event_from_stream,
    event_json,
    events_channel,
    guard_runs_key,
    log_key,
    meta_key,
    passive_key,
    state_key,
    stream_fields,
    verdict_fields,
    votes_key,
)
from breaker.store._fleet import FLEET_SCRIPT, VoteItem, VoteOutcome, verdict_from_reply
from breaker.store._lua import repair_types

# One atomic step per breaker, all keys in the `{name}` slot (Cluster-safe):
#  - a key of the wrong type (a foreign edit) is deleted, so it hurts only its own breaker;
#  - a write older than the epoch in the hash or in the non-expiring meta hash is refused;
#  - a refresh (verdict unchanged) compares a digest of the owned fields and answers 2
#    (hash or meta gone) or 3 (someone edited it) so the caller sends the whole verdict;
#  - a full write sets hash + TTL, copies the fields to meta (no TTL), appends the audit
#    events and publishes them.
# KEYS: hash, log, meta. ARGV: epoch, ttl_ms, log_maxlen, channel, mode, digest, then
# for a refresh: updated; for a full write: nfields, fields..., nevents, then per event:
# nkv, kv..., json.
_WRITE_SCRIPT = """
@REPAIR@local hash_epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
local stored = tonumber(redis.call('HGET', KEYS[3], 'epoch'))
if hash_epoch and (not stored or hash_epoch > stored) then
  stored = hash_epoch
end
local epoch = tonumber(ARGV[1])
if stored and stored > epoch then
  return {0, stored, repaired}
end
if ARGV[5] == 'refresh' then
  if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 0 then
    return {2, -1, repaired}
  end
  local vals = redis.call('HMGET', KEYS[1], @OWNED@)
  for i = 1, #vals do
    if not vals[i] then vals[i] = '' end
  end
  if redis.sha1hex(table.concat(vals, '\\n')) ~= ARGV[6] then
    return {3, -1, 1}
  end
  redis.call('HSET', KEYS[1], 'updated', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, epoch, repaired}
end
local nf = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], unpack(ARGV, 8, 7 + nf))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], unpack(ARGV, 8, 7 + nf))
local i = 8 + nf
local nevents = tonumber(ARGV[i])
i = i + 1
for _ = 1, nevents do
  local nkv = tonumber(ARGV[i])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, i + 1, i + nkv))
  i = i + nkv + 1
  redis.call('PUBLISH', ARGV[4], ARGV[i])
  i = i + 1
end
return {1, epoch, repaired}
""".replace("@OWNED@", ", ".join(f"'{f}'" for f in OWNED_FIELDS)).replace(
    "@REPAIR@", repair_types("hash", "stream", "hash")
)

# What each Redis-wide failure means for an operator, logged once when it starts.
HINTS = {
    "unreachable": "check that Redis runs and [redis] url points at it",
    "auth": "check the Redis password ([redis] password_file or BREAKER_REDIS_PASSWORD)",
    "readonly": "[redis] url points at a read-only replica: use the master, or Sentinel",
    "oom": "Redis hit maxmemory: raise it, or use a volatile-* eviction policy",
    "noperm": "the Redis user lacks a permission: allow HGETALL HMGET EVALSHA SCRIPT SCAN DEL "
    "XREVRANGE PING on the breaker keys and PUBLISH on the events channel",
    "error": "Redis refused the command; see the error",
}
# Kinds that concern one key only; the others concern the whole server.
KEY_KINDS = frozenset({"wrongtype", "script"})


def classify(exc: BaseException) -> str:
    """One word for what went wrong: a metric label and the key into HINTS."""
    text = str(exc)
    code = text.split(" ", 1)[0].upper()
    if isinstance(exc, ReadOnlyError) or "READONLY" in code:
        return "readonly"
    if isinstance(exc, OutOfMemoryError) or code.startswith("OOM") or "OOM command" in text:
        return "oom"
    if isinstance(exc, NoPermissionError) or "NOPERM" in text:
        return "noperm"
    if isinstance(exc, AuthenticationError) or code in ("WRONGPASS", "NOAUTH"):
        return "auth"
    if "WRONGTYPE" in text:
        return "wrongtype"
    if isinstance(exc, ResponseError):
        return "script" if "script" in text.lower() else "error"
    return "unreachable"


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
    missing: bool = False  # a refresh found no hash, or a foreign edit: write the whole verdict
    repaired: bool = False  # a foreign edit (changed field, wrong key type) was found
    error: str | None = None  # this breaker's write failed (its kind); the others went on


class RedisStore:
    """Talks to one Redis; every method raises StoreUnavailable on any Redis failure."""

    def __init__(self, cfg: RedisConfig, client: aioredis.Redis | None = None) -> None:
        self.cfg = cfg
        self.prefix = cfg.key_prefix
        self.client = client or connect(cfg)
        self._write = self.client.register_script(_WRITE_SCRIPT)
        self._vote = self.client.register_script(FLEET_SCRIPT)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ping(self) -> None:
        await self._call(self.client.ping())

    async def write(self, items: Sequence[WriteItem], now: float) -> list[WriteOutcome]:
        """Write several breakers in one round trip; one bad key fails only its breaker.

        Redis-wide refusals (read-only replica, OOM, NOPERM, auth) raise StoreUnavailable
        with their kind.
        """
        async with self.client.pipeline(transaction=False) as pipe:
            for item in items:
                name = item.verdict.name
                keys = [
                    state_key(self.prefix, name),
                    log_key(self.prefix, name),
                    meta_key(self.prefix, name),
                ]
                # a Cluster pipeline runs scripts too (store/_connect.py)
                await self._write(keys=keys, args=self._write_args(item, now), client=pipe)  # type: ignore[arg-type]
            replies = await self._call(pipe.execute(raise_on_error=False))
        outcomes: list[WriteOutcome] = []
        for item, reply in zip(items, replies, strict=True):
            name = item.verdict.name
            if isinstance(reply, BaseException):
                kind = classify(reply)
                if kind not in KEY_KINDS:
                    raise StoreUnavailable(f"Redis refused a write: {_describe(reply)}", kind)
                outcomes.append(WriteOutcome(name, False, -1, error=kind))
                continue
            code = int(reply[0])
            outcomes.append(
                WriteOutcome(
                    name,
                    code == 1,
                    int(reply[1]),
                    missing=code in (2, 3),
                    repaired=int(reply[2]) == 1,
                )
            )
        return outcomes

    async def vote(self, items: Sequence[VoteItem]) -> list[VoteOutcome]:
        """Send this observer's votes (and force ops); get back each fleet verdict."""
        async with self.client.pipeline(transaction=False) as pipe:
            for item in items:
                keys = [
                    state_key(self.prefix, item.name),
                    log_key(self.prefix, item.name),
                    meta_key(self.prefix, item.name),
                    votes_key(self.prefix, item.name),
                ]
                args = item.args(self.cfg.log_maxlen, events_channel(self.prefix), CONTRACT_VERSION)
                await self._vote(keys=keys, args=args, client=pipe)  # type: ignore[arg-type]
            replies = await self._call(pipe.execute(raise_on_error=False))
        outcomes: list[VoteOutcome] = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, BaseException):
                kind = classify(reply)
                if kind not in KEY_KINDS:
                    raise StoreUnavailable(f"Redis refused a vote: {_describe(reply)}", kind)
                outcomes.append(VoteOutcome(item.name, None, error=kind))
                continue
            outcomes.append(
                VoteOutcome(
                    item.name,
                    verdict_from_reply(item.name, reply),
                    live=int(reply[12]),
                    other=str(reply[13]),
                    changes=int(reply[14]),
                    repaired=int(reply[15]) == 1,
                )
            )
        return outcomes

    def _write_args(self, item: WriteItem, now: float) -> list[str | int]:
        verdict, events = item.verdict, item.events
        fields = verdict_fields(verdict, now)
        head: list[str | int] = [
            verdict.epoch,
            max(1, int(item.ttl * 1000)),
            self.cfg.log_maxlen,
            events_channel(self.prefix),
        ]
        if item.refresh_only and not events:
            return [*head, "refresh", digest(fields), fields["updated"]]
        args: list[str | int] = [*head, "full", "", len(fields) * 2]
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

    async def read_stored(self, name: str) -> dict[str, str]:
        """What a previous sidecar left: the non-expiring meta hash, else the verdict hash.

        A key of the wrong type reads as nothing (the next write repairs it).
        """
        for key in (meta_key(self.prefix, name), state_key(self.prefix, name)):
            try:
                fields: dict[str, str] = await self._call(self.client.hgetall(key))
            except StoreUnavailable as exc:
                if exc.kind not in KEY_KINDS:
                    raise
                continue
            if fields:
                return fields
        return {}

    async def forget_unconfigured(self, names: set[str]) -> list[str]:
        """Delete the meta hash of breakers no longer configured anywhere.

        A name another sidecar still publishes (its verdict hash exists) is kept:
        sidecars of one fleet may run different configs for a while.
        """
        pattern = meta_key(self.prefix, "*")
        forgotten: list[str] = []
        async for key in self.client.scan_iter(match=pattern, count=500):
            name = key[len(self.prefix) + 1 : -len("}:meta")]
            if name in names or meta_key(self.prefix, name) != key:
                continue
            if await self._call(self.client.exists(state_key(self.prefix, name))):
                continue
            await self._call(self.client.delete(key))
            forgotten.append(name)
        return forgotten

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
        """Kamailio's counters; ValueError when the key holds something else than counters."""
        try:
            fields = await self._call(
                self.client.hmget(passive_key(self.prefix, name), "forwarded", "failed")
            )
        except StoreUnavailable as exc:
            if exc.kind in KEY_KINDS:
                raise ValueError(f"{passive_key(self.prefix, name)} is not a hash") from None
            raise
        if fields[0] is None:
            return None
        try:
            counts = int(fields[0] or 0), int(fields[1] or 0)
        except ValueError:
            raise ValueError(
                f"{passive_key(self.prefix, name)} holds non-integer counters"
            ) from None
        return counts

    async def read_guard_runs(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """Every breaker's `breaker guard` outcome counts, in one pipelined round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(guard_runs_key(self.prefix, name))
            replies = await self._call(pipe.execute(raise_on_error=False))
        counts: dict[str, dict[str, int]] = {}
        for name, fields in zip(names, replies, strict=True):
            if isinstance(fields, BaseException):  # a foreign key of the wrong type: skip it
                continue
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
            kind = classify(exc)
            raise StoreUnavailable(f"Redis unavailable: {_describe(exc)}", kind) from exc


def _describe(exc: BaseException) -> str:
    """Error text without the URL: it may carry a password."""
    text = str(exc) or type(exc).__name__
    return text.split("\n", 1)[0][:200]
