"""What a guarded job does about one reading of the verdict: start, refuse, keep or stop.

Pure: the runtime (breaker.guard) reads Redis, measures how long the state has been
unknown and passes that in; this module only decides.

                 verdict allows            verdict forbids       state unknown
    not running  START                     REFUSE                refuse: REFUSE / run: START
    running      KEEP                      STOP                  refuse: KEEP until `grace`
                                                                   has passed, then STOP
                                                                 run: KEEP

"Allows" means closed, or half_open with the job's key inside the admitted share
(the same crc32 rule as the API's /allow, so a job admitted once stays admitted
while the share grows).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from breaker.core._admission import admitted
from breaker.core._machine import State


class OnUnknown(StrEnum):
    """What to do when the verdict cannot be read (Redis down, sidecar dead)."""

    REFUSE = "refuse"  # do not start; stop a running job once `grace` has passed
    RUN = "run"  # start, and keep running


class Action(StrEnum):
    START = "start"
    REFUSE = "refuse"
    KEEP = "keep"
    STOP = "stop"


class Cause(StrEnum):
    ALLOWED = "allowed"  # closed, or admitted in half_open
    OPEN = "open"  # open, or half_open with the key outside the admitted share
    UNKNOWN = "unknown"  # the verdict could not be read


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at a breaker's verdict. `state` is None when it could not be known;
    `detail` then says why (for the message)."""

    name: str
    state: State | None
    admit: int = 0
    reason: str = ""
    retry_after: int = 0
    detail: str = ""

    @property
    def known(self) -> bool:
        return self.state is not None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    cause: Cause
    message: str  # one line for the operator


def lets_through(reading: Reading, key: str) -> bool:
    """True if a known verdict lets a request with this key go."""
    if reading.state is State.CLOSED:
        return True
    if reading.state is State.HALF_OPEN:
        return admitted(reading.admit, key)
    return False


def decide(
    reading: Reading,
    *,
    running: bool,
    key: str,
    on_unknown: OnUnknown,
    unknown_for: float = 0.0,
    grace: float = 0.0,
) -> Decision:
    """The whole policy of `breaker guard`; `unknown_for` is seconds the state has been unknown."""
    go, halt = (Action.KEEP, Action.STOP) if running else (Action.START, Action.REFUSE)
    if reading.known:
        if lets_through(reading, key):
            return Decision(go, Cause.ALLOWED, _allowed_message(reading, key))
        outcome = "stopping the job" if running else "not started"
        return Decision(halt, Cause.OPEN, f"{_forbidden_message(reading, key)}; {outcome}")
    unknown = f"state of {reading.name} unknown ({reading.detail or 'no verdict'})"
    if on_unknown is OnUnknown.RUN:
        return Decision(go, Cause.UNKNOWN, f"{unknown}; running anyway (--on-unknown run)")
    if not running:
        return Decision(halt, Cause.UNKNOWN, f"{unknown}; not started (--on-unknown refuse)")
    if unknown_for < grace:
        left = grace - unknown_for
        return Decision(go, Cause.UNKNOWN, f"{unknown}; stopping in {left:.1f}s unless it returns")
    return Decision(
        halt,
        Cause.UNKNOWN,
        f"{unknown} for {unknown_for:.1f}s; stopping the job (--on-unknown refuse)",
    )


def _allowed_message(reading: Reading, key: str) -> str:
    if reading.state is State.HALF_OPEN:
        return f"{reading.name} is half_open at {reading.admit}% and admits key {key!r}"
    return f"{reading.name} is closed"


def _forbidden_message(reading: Reading, key: str) -> str:
    why = f" ({reading.reason})" if reading.reason else ""
    retry = f", retry after {reading.retry_after}s" if reading.retry_after else ""
    if reading.state is State.HALF_OPEN:
        return (
            f"{reading.name} is half_open at {reading.admit}%{why} and key {key!r} "
            f"is outside the admitted share{retry}"
        )
    return f"{reading.name} is open{why}{retry}"
