"""What one guarded run is configured with, and the default lock and job names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from breaker.client._redis import DEFAULT_PREFIX
from breaker.core._guard import OnUnknown
from breaker.store import state_key


@dataclass(frozen=True, slots=True)
class GuardOptions:
    name: str  # the breaker
    key: str  # the job's key for the half_open share
    lock_key: str | None  # None: no single-instance lock
    lock_ttl: float = 60.0
    on_unknown: OnUnknown = OnUnknown.REFUSE
    grace: float = 10.0
    poll: float = 1.0
    redis_url: str = ""  # empty: BREAKER_REDIS_URL or the default
    prefix: str = DEFAULT_PREFIX


def default_lock_key(name: str, job: str, prefix: str = DEFAULT_PREFIX) -> str:
    """`breaker:{presence}:guard:vm-presence`: in the breaker's hash slot, one per job."""
    return f"{state_key(prefix, name)}:guard:{job}"


def job_name(argv: Sequence[str]) -> str:
    return Path(argv[0]).name if argv else "job"
