"""Redis adapter: the contract, the client and the publisher that keeps it current."""

from breaker.store._connect import RedisClient, connect
from breaker.store._contract import (
    CONTRACT_VERSION,
    DEFAULT_PREFIX,
    EVENTS_CHANNEL,
    GUARD_OUTCOMES,
    event_dict,
    events_channel,
    force_from_fields,
    guard_runs_key,
    log_key,
    meta_key,
    passive_key,
    state_key,
    stored_from_fields,
    votes_key,
)
from breaker.store._fingerprint import probe_settings, settings_differences
from breaker.store._fleet import ForceOp, VoteItem, VoteOutcome
from breaker.store._pool import PoolItem, PoolOutcome
from breaker.store._publisher import Publisher
from breaker.store._redis import RedisStore

__all__ = [
    "CONTRACT_VERSION",
    "DEFAULT_PREFIX",
    "EVENTS_CHANNEL",
    "GUARD_OUTCOMES",
    "ForceOp",
    "PoolItem",
    "PoolOutcome",
    "Publisher",
    "RedisClient",
    "RedisStore",
    "VoteItem",
    "VoteOutcome",
    "connect",
    "event_dict",
    "events_channel",
    "force_from_fields",
    "guard_runs_key",
    "log_key",
    "meta_key",
    "passive_key",
    "probe_settings",
    "settings_differences",
    "state_key",
    "stored_from_fields",
    "votes_key",
]
