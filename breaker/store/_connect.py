"""The redis-py asyncio client for `[redis] url`: one server, a Sentinel master, or a Cluster.

Every form gets the same short timeouts and no hidden retries (the caller owns
backoff), the same TLS files and the same password sources. Callers use the
returned client as they would a plain `redis.asyncio.Redis`:

- Sentinel: redis-py asks the sentinels for the master's address on every new
  connection, so after a failover the next reconnect lands on the new master.
- Cluster: redis-py blocks EVALSHA in cluster pipelines (a node may not have the
  script). `_Cluster` lets scripts into pipelines again by loading every
  registered script on every primary before a pipeline runs; a node that lost
  them (restart, new primary) fails that one write, and the next one reloads.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from breaker._config import RedisConfig
from breaker._redis_url import RedisUrl, parse_redis_url

RedisClient: TypeAlias = "aioredis.Redis | RedisCluster"


def connect(cfg: RedisConfig) -> RedisClient:
    """A client with short timeouts and no hidden retries: the caller owns backoff."""
    url = parse_redis_url(cfg.url)
    kwargs: dict[str, Any] = {
        "socket_timeout": cfg.command_timeout,
        "socket_connect_timeout": cfg.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
        "health_check_interval": 0,
        "client_name": "breaker",
    }
    password = _password(cfg)
    if url.mode == "single":  # rediss:// itself turns TLS on
        if password is not None:
            kwargs["password"] = password
        tls = _tls_options(cfg) if url.tls else {}
        single: aioredis.Redis = aioredis.Redis.from_url(cfg.url, **kwargs, **tls)
        return single
    if url.tls:
        kwargs.update(ssl=True, **_tls_options(cfg))
    if url.username is not None:
        kwargs["username"] = url.username
    if url.password is not None or password is not None:  # the URL wins, as redis:// does
        kwargs["password"] = url.password if url.password is not None else password
    if url.mode == "cluster":
        return _Cluster(startup_nodes=[ClusterNode(h, p) for h, p in url.nodes], **kwargs)
    return _sentinel_master(url, cfg, kwargs)


def _sentinel_master(url: RedisUrl, cfg: RedisConfig, kwargs: dict[str, Any]) -> RedisClient:
    """The master's client; the sentinels get the same timeouts and TLS, their own password."""
    shared = ("socket_timeout", "socket_connect_timeout", "retry", "decode_responses")
    tls = ("ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
    sentinel_kwargs = {key: kwargs[key] for key in (*shared, *tls) if key in kwargs}
    sentinel_password = _sentinel_password(cfg)
    if sentinel_password is not None:
        sentinel_kwargs["password"] = sentinel_password
    sentinel = Sentinel(list(url.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    master: _SentinelMaster = sentinel.master_for(
        url.master, redis_class=_SentinelMaster, db=url.db, **kwargs
    )
    master.sentinel_manager = sentinel
    return master


def _tls_options(cfg: RedisConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if cfg.ssl_ca_file:
        options["ssl_ca_certs"] = str(cfg.ssl_ca_file)
    if cfg.ssl_certfile:
        options["ssl_certfile"] = str(cfg.ssl_certfile)
    if cfg.ssl_keyfile:
        options["ssl_keyfile"] = str(cfg.ssl_keyfile)
    return options


def _password(cfg: RedisConfig) -> str | None:
    if cfg.password_file is not None:
        return cfg.password_file.read_text(encoding="utf-8").strip()
    return os.environ.get("BREAKER_REDIS_PASSWORD")


def _sentinel_password(cfg: RedisConfig) -> str | None:
    if cfg.sentinel_password_file is not None:
        return cfg.sentinel_password_file.read_text(encoding="utf-8").strip()
    return os.environ.get("BREAKER_REDIS_SENTINEL_PASSWORD")


class _SentinelMaster(aioredis.Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


class _Cluster(RedisCluster):
    """RedisCluster whose pipelines accept registered Lua scripts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scripts: dict[str, str] = {}  # sha -> source
        self.scripts_loaded = False

    def register_script(self, script: Any) -> AsyncScript:  # type: ignore[override]
        registered = super().register_script(script)
        text = script.decode() if isinstance(script, bytes) else str(script)
        self.scripts[registered.sha] = text
        self.scripts_loaded = False
        return registered

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)
        return _ScriptPipeline(self)  # type: ignore[abstract]

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every registered script on every primary."""
        for text in list(self.scripts.values()):
            await self.script_load(text)
        self.scripts_loaded = True


class _ScriptPipeline(ClusterPipeline):
    """A non-transactional cluster pipeline that sends EVALSHA like any keyed command."""

    def __init__(self, client: _Cluster) -> None:
        super().__init__(client)
        self.owner = client

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        # Queue and return; awaiting the pipeline itself would re-initialize it and
        # drop the queue, so AsyncScript gets this coroutine to await instead.
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        if not self.owner.scripts_loaded:
            try:
                await self.owner.load_scripts()
            except BaseException:
                await self.reset()  # type: ignore[no-untyped-call]
                raise
        try:
            replies = await super().execute(raise_on_error, allow_redirections)
        except NoScriptError:
            self.owner.scripts_loaded = False
            raise
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self.owner.scripts_loaded = False  # the next write loads them again
        return replies
