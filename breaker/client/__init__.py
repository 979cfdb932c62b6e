"""Talking to a breaker from scripts, jobs and the CLI.

    from breaker.client import allowed, allowed_sync, AsyncClient, Client

    if await allowed("presence", key="sip:alice@example.net"):
        send_publish()

The HTTP clients wrap the sidecar's API; the Redis readers consume the Redis
contract directly (docs/redis-contract.md). To run a whole job only while a breaker
allows it, see breaker.guard.

Errors: every failure is a BreakerError (breaker._errors draws the tree); catch
ClientError for the HTTP API, ConfigError for bad arguments, GuardRefused/GuardStopped
around breaker.guard.
"""

from breaker._errors import (
    BreakerError,
    ClientError,
    ConfigError,
    Forbidden,
    GuardError,
    GuardRefused,
    GuardStopped,
    StoreUnavailable,
    Unauthorized,
    UnknownBreaker,
    Unreachable,
)
from breaker.client._http import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    AsyncClient,
    Client,
    allowed,
    allowed_sync,
    default_url,
    read_token,
)
from breaker.client._lock import JobLock, LockState
from breaker.client._models import (
    Allow,
    BreakerStatus,
    Forced,
    HistoryEvent,
    LastProbe,
    Overview,
)
from breaker.client._redis import (
    DEFAULT_PREFIX,
    DEFAULT_REDIS_URL,
    EventFeed,
    VerdictReader,
    default_redis_url,
    redis_client,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "Allow",
    "AsyncClient",
    "BreakerError",
    "BreakerStatus",
    "Client",
    "ClientError",
    "ConfigError",
    "EventFeed",
    "Forbidden",
    "Forced",
    "GuardError",
    "GuardRefused",
    "GuardStopped",
    "HistoryEvent",
    "JobLock",
    "LastProbe",
    "LockState",
    "Overview",
    "StoreUnavailable",
    "Unauthorized",
    "UnknownBreaker",
    "Unreachable",
    "VerdictReader",
    "allowed",
    "allowed_sync",
    "default_redis_url",
    "default_url",
    "read_token",
    "redis_client",
]
