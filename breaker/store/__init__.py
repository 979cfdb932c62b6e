"""Redis adapter: the contract, the client and the publisher that keeps it current."""

from breaker.store._connect import RedisClient, connect
from breaker.store._contract import (
    CONTRACT_VERSION,
    event_dict,
    events_channel,
    force_from_fields,
    log_key,
    passive_key,
    state_key,
)
from breaker.store._publisher import Publisher
from breaker.store._redis import RedisStore, WriteItem, WriteOutcome

__all__ = [
    "CONTRACT_VERSION",
    "Publisher",
    "RedisClient",
    "RedisStore",
    "WriteItem",
    "WriteOutcome",
    "connect",
    "event_dict",
    "events_channel",
    "force_from_fields",
    "log_key",
    "passive_key",
    "state_key",
]
