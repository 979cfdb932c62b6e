"""The API's request and response bodies (pydantic), and how a service snapshot becomes one.

The same shapes serve the JSON routes and the status page, which draws what the API shows.
"""

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from breaker.core import Verdict
from breaker.service import BreakerSnapshot, PoolSnapshot

# Control characters (C0, DEL, C1) and Unicode line/paragraph separators: a reason with
# them would split a log line or Kamailio's xlog line.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
REASON_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"


def _printable(value: str) -> str:
    found = _CONTROL_RE.search(value)
    if found:
        raise ValueError(
            f"must not contain control characters (found {found.group()!r} at {found.start()})"
        )
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class ForcedOut(BaseModel):
    state: Literal["open", "closed"]
    by: str
    reason: str
    until: float


class ProbeOut(BaseModel):
    ok: bool
    rtt_ms: float | None
    reason: str
    detail: str
    at: float


class CountersOut(BaseModel):
    probes: int
    probe_failures: int


class BreakerOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    admit: int
    epoch: int
    since: float
    reason: str
    retry_after: int
    computed: Literal["closed", "open", "half_open"]
    forced: ForcedOut | None
    last_probe: ProbeOut | None
    counters: CountersOut
    passive_failing: bool
    target: str
    detection_bound: float
    kind: Literal["breaker", "pool"] = "breaker"
    pool: str | None = None  # a member: the pool it belongs to
    members: list["MemberOut"] | None = None  # a pool: its members' verdicts
    min_healthy: int | None = None  # a pool: closed while this many members are closed


class MemberOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    admit: int
    retry_after: int


class BreakerList(BaseModel):
    breakers: list[BreakerOut]
    redis_up: bool


class ForceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["open", "closed"]
    ttl: float = Field(
        ge=1,
        allow_inf_nan=False,
        description="seconds until the force expires by itself (at most force_max_ttl)",
    )
    reason: Annotated[
        str,
        Field(min_length=1, max_length=500, json_schema_extra={"pattern": REASON_PATTERN}),
        AfterValidator(_printable),
    ]


class HistoryOut(BaseModel):
    name: str
    source: Literal["redis", "memory"]
    events: list[dict[str, Any]]


class AllowOut(BaseModel):
    allowed: bool
    name: str
    state: Literal["closed", "open", "half_open"]
    admit: int
    epoch: int
    retry_after: int


class ErrorOut(BaseModel):
    error: str


class ProblemOut(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    error: str
    detail: list[ProblemOut]


def _verdict_fields(v: Verdict) -> dict[str, Any]:
    """What a breaker and a pool show alike: the published verdict."""
    return {
        "name": v.name,
        "state": v.state.value,
        "admit": v.admit,
        "epoch": v.epoch,
        "since": v.since,
        "reason": v.reason,
        "retry_after": v.retry_after,
        "computed": v.computed.value,
    }


def breaker_out(status: BreakerSnapshot) -> BreakerOut:
    v = status.verdict
    probe = status.last_probe
    return BreakerOut(
        **_verdict_fields(v),
        forced=(
            ForcedOut(
                state=v.force.state.value,
                by=v.force.actor,
                reason=v.force.reason,
                until=v.force.until,
            )
            if v.force
            else None
        ),
        last_probe=(
            ProbeOut(
                ok=probe.ok,
                rtt_ms=round(probe.rtt * 1000, 3) if probe.rtt is not None else None,
                reason=probe.reason,
                detail=probe.detail,
                at=probe.at,
            )
            if probe
            else None
        ),
        counters=CountersOut(
            probes=status.probes_total, probe_failures=status.probe_failures_total
        ),
        passive_failing=status.passive_failing,
        target=status.cfg.target.display,
        detection_bound=status.cfg.detection_bound,
    )


def pool_out(status: PoolSnapshot) -> BreakerOut:
    """A pool in the breaker shape: its derived verdict, no probe of its own."""
    v = status.verdict
    return BreakerOut(
        **_verdict_fields(v),
        forced=None,
        last_probe=None,
        counters=CountersOut(probes=0, probe_failures=0),
        passive_failing=False,
        target="",
        detection_bound=status.detection_bound,
        kind="pool",
        members=[
            MemberOut(name=m.name, state=m.state.value, admit=m.admit, retry_after=m.retry_after)
            for m in status.members
        ],
        min_healthy=status.cfg.healthy_needed,
    )
