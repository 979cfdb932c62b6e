"""Redis contract v1 as code: key names and the wire form of verdicts and events.

docs/redis-contract.md is the human version; consumers outside Python depend on
both agreeing, and tests/store checks that they do.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from breaker.core import Event, Force, State, Verdict

CONTRACT_VERSION = 1
EVENTS_CHANNEL = "events"


def state_key(prefix: str, name: str) -> str:
    """`breaker:{presence}`: braces are a Cluster hash tag, so one slot holds a breaker's keys."""
    return f"{prefix}{{{name}}}"


def log_key(prefix: str, name: str) -> str:
    return f"{state_key(prefix, name)}:log"


def passive_key(prefix: str, name: str) -> str:
    return f"{state_key(prefix, name)}:passive"


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
    return f"{prefix}{EVENTS_CHANNEL}"


def verdict_fields(verdict: Verdict, now: float) -> dict[str, str]:
    """The hash fields, all present on every write so no stale field lingers."""
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
    """Read back an active force from a stored hash (sidecar restart), or None."""
    try:
        state = State(fields.get("forced", ""))
        until = float(fields["forced_until"])
    except (ValueError, KeyError):
        return None
    return Force(
        state=state,
        until=until,
        actor=fields.get("forced_by", "") or "unknown",
        reason=fields.get("forced_reason", "") or "restored",
        at=float(fields.get("since", "0") or 0),
    )


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


def event_json(event: Event) -> str:
    return json.dumps(event_dict(event), separators=(",", ":"))


def stream_fields(event: Event) -> dict[str, str]:
    """Stream entries hold strings; None becomes empty."""
    return {k: "" if v is None else str(v) for k, v in event_dict(event).items()}


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
