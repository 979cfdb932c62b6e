"""HTTP API: reads served from memory (no Redis round trip), writes need an operate token."""

import json
import time
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from breaker import core
from breaker._errors import StoreUnavailable
from breaker.api._auth import Principal, TokenRegistry
from breaker.api._page import page_router
from breaker.core import InvalidForce, State
from breaker.service import BreakerStatus, Service

# ---------------------------------------------------------------- models


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


class BreakerList(BaseModel):
    breakers: list[BreakerOut]
    redis_up: bool


class ForceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["open", "closed"]
    ttl: float = Field(gt=0, description="seconds until the force expires by itself")
    reason: str = Field(min_length=1, max_length=500)


class HistoryOut(BaseModel):
    name: str
    source: Literal["redis", "memory"]
    events: list[dict[str, Any]]


def breaker_out(status: BreakerStatus) -> BreakerOut:
    v = status.verdict
    probe = status.last_probe
    return BreakerOut(
        name=v.name,
        state=v.state.value,
        admit=v.admit,
        epoch=v.epoch,
        since=v.since,
        reason=v.reason,
        retry_after=v.retry_after,
        computed=v.computed.value,
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
        target=status.cfg.target.url,
        detection_bound=status.cfg.detection_bound,
    )


# ---------------------------------------------------------------- app


def create_app(service: Service, tokens: TokenRegistry, open_reads: bool = True) -> FastAPI:
    # Dependencies are async on purpose: sync ones run in a worker thread per request,
    # which cost /allow two thirds of its throughput (bench/api.py).
    app = FastAPI(
        title="breaker",
        summary="Circuit breaker for SIP presence servers",
        version="1",
    )

    async def bearer(authorization: Annotated[str | None, Header()] = None) -> Principal | None:
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return tokens.authenticate(value.strip())

    def unauthorized(message: str) -> HTTPException:
        return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})

    async def reader(principal: Annotated[Principal | None, Depends(bearer)]) -> Principal | None:
        if open_reads or principal is not None:
            return principal
        raise unauthorized("a valid token is required to read (open_reads is off)")

    async def operator(
        principal: Annotated[Principal | None, Depends(bearer)],
        authorization: Annotated[str | None, Header()] = None,
    ) -> Principal:
        if tokens.empty:
            raise unauthorized("no operate token is configured on the sidecar; writes are disabled")
        if principal is None:
            raise unauthorized("missing or wrong token" if authorization else "missing token")
        if principal.role != "operate":
            raise HTTPException(403, f"token {principal.name!r} has role read; operate is needed")
        return principal

    async def known(name: str) -> str:
        if name not in service.runtimes:
            raise HTTPException(
                404, f"unknown breaker {name!r}; known: {', '.join(service.names()) or 'none'}"
            )
        return name

    Reader = Annotated[Principal | None, Depends(reader)]
    Operator = Annotated[Principal, Depends(operator)]
    Name = Annotated[str, Depends(known)]

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(
            {
                "error": "; ".join(problems),
                "detail": json.loads(json.dumps(exc.errors(), default=str)),
            },
            status_code=422,
        )

    @app.get("/v1/breakers", response_model=BreakerList)
    async def list_breakers(_: Reader) -> BreakerList:
        return BreakerList(
            breakers=[breaker_out(service.status(n)) for n in service.names()],
            redis_up=service.redis_up,
        )

    @app.get("/v1/breakers/{name}", response_model=BreakerOut)
    async def get_breaker(name: Name, _: Reader) -> BreakerOut:
        return breaker_out(service.status(name))

    @app.get(
        "/v1/breakers/{name}/allow",
        responses={200: {"description": "send it"}, 503: {"description": "don't; see Retry-After"}},
    )
    async def allow(
        name: Name, _: Reader, key: str | None = Query(None, max_length=512)
    ) -> Response:
        """For PBX hooks and scripts: 200 to send, 503 + Retry-After to hold back."""
        v = service.status(name).verdict
        ok = core.admitted(v.admit, key)
        body = {
            "allowed": ok,
            "name": name,
            "state": v.state.value,
            "admit": v.admit,
            "epoch": v.epoch,
            "retry_after": 0 if ok else v.retry_after,
        }
        headers = {} if ok else {"Retry-After": str(v.retry_after)}
        return Response(
            json.dumps(body),
            status_code=200 if ok else 503,
            headers=headers,
            media_type="application/json",
        )

    @app.put("/v1/breakers/{name}/force", response_model=BreakerOut)
    async def force(name: Name, body: ForceIn, who: Operator) -> BreakerOut:
        try:
            service.force(name, State(body.state), body.ttl, who.name, body.reason)
        except InvalidForce as exc:
            raise HTTPException(422, str(exc)) from None
        return breaker_out(service.status(name))

    @app.delete("/v1/breakers/{name}/force", response_model=BreakerOut)
    async def release(name: Name, who: Operator) -> BreakerOut:
        service.release(name, who.name)
        return breaker_out(service.status(name))

    @app.get("/v1/breakers/{name}/history", response_model=HistoryOut)
    async def history(
        name: Name,
        _: Reader,
        since: Annotated[float | None, Query(description="seconds ago")] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    ) -> HistoryOut:
        after = time.time() - since if since is not None else None
        try:
            await service.settle()
            events = await service.store.history(name, after, limit)
            return HistoryOut(name=name, source="redis", events=events)
        except StoreUnavailable:
            recent = service.recent_events(name)
            if after is not None:
                recent = [e for e in recent if e["at"] >= after]
            return HistoryOut(name=name, source="memory", events=recent[:limit])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = service.redis_up
        return JSONResponse(
            {"status": "ready" if ready else "redis unavailable", "redis_up": ready},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST
        )

    app.include_router(page_router(service, reader))  # GET / status page, docs/api.md
    return app
