"""Redis contract v1 as code: key names and the wire form of verdicts and events.

docs/redis-contract.md is the human version; consumers outside Python depend on
both agreeing, and tests/store checks that they do.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import replace
from typing import Any

from breaker.core import Event, Force, State, Stored, Verdict

CONTRACT_VERSION = 1
DEFAULT_PREFIX = "breaker:"


def state_key(prefix: str, name: str) -> str:
    """`breaker:{presence}`: braces are a Cluster hash tag, so one slot holds a breaker's keys."""
    return f"{prefix}{{{name}}}"


def log_key(prefix: str, name: str) -> str:
    return f"{state_key(prefix, name)}:log"


def passive_key(prefix: str, name: str) -> str:
    return f"{state_key(prefix, name)}:passive"


def meta_key(prefix: str, name: str) -> str:
    """`breaker:{presence}:meta`: no TTL, so forces and the epoch outlive any restart."""
    return f"{state_key(prefix, name)}:meta"


def votes_key(prefix: str, name: str) -> str:
    """`breaker:{presence}:votes`: one field per observer, `state|expires_ms|instance|settings`."""
    return f"{state_key(prefix, name)}:votes"


# Fields of the guard_runs_key hash: what one `breaker guard` run ended as.
GUARD_OUTCOMES = (
    "ran",
    "refused_open",
    "refused_locked",
    "refused_unknown",
    "stopped_open",
    "stopped_unknown",
)


def guard_runs_key(prefix: str, name: str) -> str:
    """`breaker:{presence}:guard`: a hash of `breaker guard` outcome -> count (HINCRBY)."""
    return f"{state_key(prefix, name)}:guard"


def events_channel(prefix: str) -> str:
    """`breaker:events`: one channel per prefix, every breaker's events on it."""
    return f"{prefix}events"


# The channel under the default prefix, for tools that do not take a prefix.
EVENTS_CHANNEL = events_channel(DEFAULT_PREFIX)


def verdict_fields(verdict: Verdict, now: float) -> dict[str, str]:
    """The hash a verdict is stored as, every field on every write so none lingers.

    The fleet script writes the same fields in Lua (tests/store checks both agree); this is
    the form for tools that write a verdict without a sidecar, such as the test beds.
    """
    force = verdict.force
    return {
        "state": verdict.state.value,
        "admit": str(verdict.admit),
        "epoch": str(verdict.epoch),
        "since": f"{verdict.since:.3f}",
        "reason": verdict.reason,
        "retry_after": str(verdict.retry_after),
        "forced": force.state.value if force else "",
        "forced_by": force.actor if force else "",
        "forced_reason": force.reason if force else "",
        "forced_until": f"{force.until:.3f}" if force else "",
        "computed": verdict.computed.value,
        "updated": f"{now:.3f}",
        "contract": str(CONTRACT_VERSION),
    }


def force_from_fields(fields: dict[str, str]) -> Force | None:
    """Read back an active force from a stored hash (sidecar restart), or None.

    Times stay unix seconds; garbage in any field means no force, never an exception.
    """
    try:
        state = State(fields.get("forced", ""))
        until = float(fields["forced_until"])
    except (ValueError, KeyError):
        return None
    if state is State.HALF_OPEN or not math.isfinite(until):
        return None
    return Force(
        state=state,
        until=until,
        actor=fields.get("forced_by", "") or "unknown",
        reason=fields.get("forced_reason", "") or "restored",
        at=_float(fields.get("since"), until),
    )


def stored_from_fields(fields: dict[str, str], offset: float) -> Stored | None:
    """A previous sidecar's verdict, times moved to the monotonic clock (wall - offset).

    None when the fields are missing or not what this sidecar writes: garbage is
    ignored for that breaker, never raised.
    """
    try:
        computed = State(fields["computed"])
        admit = int(fields["admit"])
        epoch = int(fields["epoch"])
        since = float(fields["since"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(since) and 0 <= admit <= 100 and epoch >= 0):
        return None
    force = force_from_fields(fields)
    return Stored(
        computed=computed,
        admit=admit,
        epoch=epoch,
        since=since - offset,
        reason=fields.get("reason", "") or "restored",
        force=replace(force, until=force.until - offset, at=force.at - offset) if force else None,
    )


def _float(value: str | None, default: float) -> float:
    try:
        number = float(value or "")
    except ValueError:
        return default
    return number if math.isfinite(number) else default


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "event": event.kind,
        "name": event.name,
        "from": event.from_state.value,
        "to": event.to_state.value,
        "state": event.state.value,
        "admit": event.admit,
        "epoch": event.epoch,
        "at": round(event.at, 3),
        "reason": event.reason,
        "actor": event.actor,
        "forced": event.forced.value if event.forced else "",
        "until": round(event.until, 3) if event.until is not None else None,
        "contract": CONTRACT_VERSION,
    }


def event_from_stream(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry back to the JSON event shape (numbers as numbers)."""
    out: dict[str, Any] = dict(fields)
    out["id"] = entry_id
    for key in ("admit", "epoch", "contract"):
        if key in out:
            with contextlib.suppress(ValueError):
                out[key] = int(out[key])
    for key in ("at", "until"):
        if key in out:
            try:
                out[key] = float(out[key]) if out[key] != "" else None
            except ValueError:
                out[key] = None
    return out
