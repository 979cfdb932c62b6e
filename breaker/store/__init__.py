"""Redis adapter: the contract, the client and the publisher that keeps it current."""

from breaker.store._contract import (
    CONTRACT_VERSION,
    GUARD_OUTCOMES,
    event_dict,
    events_channel,
    force_from_fields,
    guard_runs_key,
    log_key,
    passive_key,
    state_key,
)
from breaker.store._publisher import Publisher
from breaker.store._redis import RedisStore, WriteItem, WriteOutcome, connect

__all__ = [
    "CONTRACT_VERSION",
    "GUARD_OUTCOMES",
    "Publisher",
    "RedisStore",
    "WriteItem",
    "WriteOutcome",
    "connect",
    "event_dict",
    "events_channel",
    "force_from_fields",
    "guard_runs_key",
    "log_key",
    "passive_key",
    "state_key",
]
