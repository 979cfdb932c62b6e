"""HTTP API: reads served from memory (no Redis round trip), writes need an operate token.

Every answer the API can give is in its OpenAPI schema; tests/api/test_schemathesis.py
holds it to that against a live sidecar. Requests pass the Gate (_gate.py) first: it
authenticates on the headers and caps the body before FastAPI reads anything. The
bodies are in _models.py, what the schema says beyond the routes in _openapi.py.
"""

import json
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from breaker import core
from breaker._config import NAME_PATTERN
from breaker._errors import StoreUnavailable
from breaker.api._auth import Principal, TokenRegistry
from breaker.api._gate import PRINCIPAL, Gate, Need
from breaker.api._models import (
    AllowOut,
    BreakerList,
    BreakerOut,
    ForceIn,
    HistoryOut,
    breaker_out,
    pool_out,
)
from breaker.api._openapi import (
    FORBIDDEN,
    INVALID,
    IS_POOL,
    TOO_LARGE,
    UNAUTHORIZED,
    UNKNOWN,
    UNPARSABLE,
    Responses,
    document,
)
from breaker.api._page import add_status_page
from breaker.api._service import ApiService
from breaker.core import InvalidForce, State

# Paths that stay open whatever open_reads says: orchestrators and Prometheus poll them.
# "/" is the status page's shell: it carries no data and asks for a token itself.
ALWAYS_OPEN = frozenset({"/", "/healthz", "/readyz", "/metrics"})
HISTORY_SINCE_MAX = 10 * 365 * 86400.0  # seconds ago; the audit stream holds far less


def create_app(service: ApiService, tokens: TokenRegistry, open_reads: bool = True) -> FastAPI:
    # Dependencies are async on purpose: sync ones run in a worker thread per request,
    # which cost /allow two thirds of its throughput (bench/api.py).
    app = FastAPI(
        title="breaker",
        summary="Circuit breaker for SIP presence servers",
        version="1",
        responses={**UNPARSABLE, **TOO_LARGE},
    )
    # Declares the scheme in OpenAPI; the Gate has already authenticated by then.
    bearer_scheme = HTTPBearer(auto_error=False, description="an API token (docs/api.md)")
    secured = [Depends(bearer_scheme)]
    read_auth: Responses = {} if open_reads else dict(UNAUTHORIZED)
    read_deps = [] if open_reads else secured

    async def operator(request: Request) -> Principal:
        principal: Principal | None = request.scope.get(PRINCIPAL)
        if principal is None:  # the Gate refuses first; this guards a mis-wired app
            raise HTTPException(401, "missing token", headers={"WWW-Authenticate": "Bearer"})
        return principal

    async def known(
        name: Annotated[str, Path(max_length=63, pattern=NAME_PATTERN)],
    ) -> str:
        known_names = [*service.names(), *service.pool_names()]
        if name not in known_names:
            raise HTTPException(
                404, f"unknown breaker {name!r}; known: {', '.join(known_names) or 'none'}"
            )
        return name

    def out(name: str) -> BreakerOut:
        """A breaker (with its pool, if any) or a pool, in the breaker shape."""
        if name in service.pool_names():
            return pool_out(service.pool_status(name))
        found = breaker_out(service.status(name))
        found.pool = service.pool_of(name)
        return found

    def not_a_pool(name: str) -> None:
        if name in service.pool_names():
            raise HTTPException(
                409, f"{name!r} is a pool: its verdict is derived; force or release its members"
            )

    Operator = Annotated[Principal, Depends(operator)]
    Name = Annotated[str, Depends(known)]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route matching the path
            headers["Allow"] = ", ".join(_allowed_methods(app.routes, request.url.path))
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only loc, msg and type: echoing the input could echo NaN (unserialisable),
        # control characters or a secret someone pasted into the wrong field.
        problems = [
            {
                "loc": [p if isinstance(p, int) else str(p) for p in e["loc"]],
                "msg": str(e["msg"]),
                "type": str(e["type"]),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in problems)
        return JSONResponse({"error": summary, "detail": problems}, status_code=422)

    @app.get(
        "/v1/breakers",
        response_model=BreakerList,
        responses=read_auth,
        dependencies=read_deps,
    )
    async def list_breakers() -> BreakerList:
        return BreakerList(
            breakers=[out(n) for n in [*service.names(), *service.pool_names()]],
            redis_up=service.redis_up,
        )

    @app.get(
        "/v1/breakers/{name}",
        response_model=BreakerOut,
        responses={**read_auth, **UNKNOWN, **INVALID},
        dependencies=read_deps,
    )
    async def get_breaker(name: Name) -> BreakerOut:
        return out(name)

    @app.get(
        "/v1/breakers/{name}/allow",
        response_model=AllowOut,
        responses={
            200: {"description": "send it"},
            503: {
                "model": AllowOut,
                "description": "don't; see Retry-After",
                "headers": {
                    "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}
                },
            },
            **read_auth,
            **UNKNOWN,
            **INVALID,
        },
        dependencies=read_deps,
    )
    async def allow(
        name: Name, key: Annotated[str | None, Query(max_length=512)] = None
    ) -> Response:
        """For PBX hooks and scripts: 200 to send, 503 + Retry-After to hold back."""
        v = service.verdict_of(name)
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

    write_errors: Responses = {**UNAUTHORIZED, **FORBIDDEN, **UNKNOWN, **IS_POOL, **INVALID}

    @app.put(
        "/v1/breakers/{name}/force",
        response_model=BreakerOut,
        responses=write_errors,
        dependencies=secured,
    )
    async def force(name: Name, body: ForceIn, who: Operator) -> BreakerOut:
        not_a_pool(name)
        try:
            forced = service.force(name, State(body.state), body.ttl, who.name, body.reason)
        except InvalidForce as exc:  # the policy's limits: answered like any invalid body
            problem = {"loc": ("body",), "msg": str(exc), "type": "invalid_force"}
            raise RequestValidationError([problem]) from None
        return breaker_out(forced)

    @app.delete(
        "/v1/breakers/{name}/force",
        response_model=BreakerOut,
        responses=write_errors,
        dependencies=secured,
    )
    async def release(name: Name, who: Operator) -> BreakerOut:
        not_a_pool(name)
        return breaker_out(service.release(name, who.name))

    @app.get(
        "/v1/breakers/{name}/history",
        response_model=HistoryOut,
        responses={**read_auth, **UNKNOWN, **INVALID},
        dependencies=read_deps,
    )
    async def history(
        name: Name,
        since: Annotated[
            float | None,
            Query(ge=0, le=HISTORY_SINCE_MAX, allow_inf_nan=False, description="seconds ago"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
    ) -> HistoryOut:
        after = service.wall() - since if since is not None else None
        try:
            events = await service.history(name, after, limit)
            return HistoryOut(name=name, source="redis", events=events)
        except StoreUnavailable:
            recent = service.recent_events(name)
            if after is not None:
                recent = [e for e in recent if e["at"] >= after]
            return HistoryOut(name=name, source="memory", events=recent[:limit])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={
            200: {"description": "Redis takes writes"},
            503: {"description": "Redis is unavailable; the sidecar still probes and serves"},
        },
    )
    async def readyz() -> JSONResponse:
        ready = service.redis_up
        failing = service.failing_tasks()
        status = "ready" if ready else "redis unavailable"
        if failing:
            status = f"tasks failing: {', '.join(failing)}"
        return JSONResponse(
            {"status": status, "redis_up": ready, "tasks_failing": failing},
            status_code=200 if ready and not failing else 503,
        )

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    add_status_page(app, service)  # GET / and its stream, docs/api.md
    document(app, service, open_reads)

    def need(route: BaseRoute) -> Need:
        """Default deny: any route added later (a status page…) is a read unless listed."""
        if isinstance(route, Route):
            if route.path in ALWAYS_OPEN:
                return None
            if (route.methods or set()) - {"GET", "HEAD", "OPTIONS"}:
                return "operate"
        return None if open_reads else "read"

    app.add_middleware(
        Gate, routes=lambda: app.router.routes, need=need, tokens=tokens, open_reads=open_reads
    )
    return app


def _allowed_methods(routes: list[BaseRoute], path: str) -> list[str]:
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.path_regex.match(path) and route.methods:
            methods |= route.methods
    return sorted(methods)
