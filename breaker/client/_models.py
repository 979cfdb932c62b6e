"""What the sidecar's API answers, as typed values rather than dicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from breaker._errors import ClientError
from breaker.core import State

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Forced:
    state: State
    by: str  # name of the token that forced it
    reason: str
    until: float  # unix seconds


@dataclass(frozen=True, slots=True)
class LastProbe:
    ok: bool
    rtt_ms: float | None
    reason: str
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    name: str
    state: State  # effective: a force wins over the probes
    admit: int
    epoch: int
    since: float
    reason: str
    retry_after: int
    computed: State  # what the probes say
    forced: Forced | None
    last_probe: LastProbe | None
    target: str
    kind: str = "breaker"  # or "pool": a verdict derived from its members
    pool: str | None = None  # a member: the pool it belongs to
    members: tuple[str, ...] = ()  # a pool: its members' names

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED


@dataclass(frozen=True, slots=True)
class Overview:
    breakers: tuple[BreakerStatus, ...]
    redis_up: bool

    @property
    def all_closed(self) -> bool:
        return all(b.closed for b in self.breakers)


@dataclass(frozen=True, slots=True)
class Allow:
    """The answer of /allow: may this request (with this key) go now?"""

    allowed: bool
    name: str
    state: State
    admit: int
    epoch: int
    retry_after: int


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One audit entry: a transition, force, release, expiry or resync."""

    event: str
    name: str
    at: float
    from_state: str
    to_state: str
    state: str
    admit: int
    epoch: int
    reason: str
    actor: str  # token name for force/release, `probe` or `sidecar` otherwise
    forced: str
    until: float | None

    @property
    def ttl(self) -> float | None:
        """How long a force was given, in seconds."""
        return self.until - self.at if self.event == "force" and self.until else None


# ---------------------------------------------------------------- parsing


def parse_status(data: Any) -> BreakerStatus:
    return _parse("breaker", _status, data)


def parse_overview(data: Any) -> Overview:
    return _parse(
        "breaker list",
        lambda d: Overview(tuple(_status(b) for b in d["breakers"]), bool(d["redis_up"])),
        data,
    )


def parse_allow(data: Any) -> Allow:
    return _parse(
        "allow",
        lambda d: Allow(allowed=bool(d["allowed"]), **_verdict(d)),
        data,
    )


def parse_history(data: Any) -> list[HistoryEvent]:
    return _parse("history", lambda d: [_event(e) for e in d["events"]], data)


def _verdict(d: dict[str, Any]) -> dict[str, Any]:
    """The verdict fields a status and an /allow answer share, read alike."""
    return {
        "name": str(d["name"]),
        "state": State(d["state"]),
        "admit": int(d["admit"]),
        "epoch": int(d["epoch"]),
        "retry_after": int(d["retry_after"]),
    }


def _status(d: dict[str, Any]) -> BreakerStatus:
    forced = d.get("forced")
    probe = d.get("last_probe")
    return BreakerStatus(
        **_verdict(d),
        since=float(d["since"]),
        reason=str(d["reason"]),
        computed=State(d["computed"]),
        forced=(
            Forced(
                State(forced["state"]),
                str(forced["by"]),
                str(forced["reason"]),
                float(forced["until"]),
            )
            if forced
            else None
        ),
        last_probe=(
            LastProbe(
                ok=bool(probe["ok"]),
                rtt_ms=None if probe["rtt_ms"] is None else float(probe["rtt_ms"]),
                reason=str(probe["reason"]),
                detail=str(probe.get("detail", "")),
                at=float(probe["at"]),
            )
            if probe
            else None
        ),
        target=str(d.get("target", "")),
        kind=str(d.get("kind") or "breaker"),
        pool=str(d["pool"]) if d.get("pool") else None,
        members=tuple(str(m["name"]) for m in d.get("members") or ()),
    )


def _event(d: dict[str, Any]) -> HistoryEvent:
    until = d.get("until")
    return HistoryEvent(
        event=str(d["event"]),
        name=str(d.get("name", "")),
        at=float(d["at"]),
        from_state=str(d.get("from", "")),
        to_state=str(d.get("to", "")),
        state=str(d.get("state", "")),
        admit=int(d.get("admit", 0)),
        epoch=int(d.get("epoch", 0)),
        reason=str(d.get("reason", "")),
        actor=str(d.get("actor", "")),
        forced=str(d.get("forced") or ""),
        until=float(until) if until not in (None, "") else None,
    )


def _parse(what: str, build: Callable[[Any], T], data: Any) -> T:
    try:
        return build(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ClientError(
            f"unexpected {what} answer from the sidecar ({type(exc).__name__}: {exc}); "
            "is the CLI the same version as the sidecar?"
        ) from None
