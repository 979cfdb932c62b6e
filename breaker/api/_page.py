"""The status page: `GET /` (one self-contained HTML page) and the event stream it reads.

The page carries no data itself, so it is served without a token; everything it shows
comes from `GET /v1/page/stream`, which needs the same read access as the rest of the API.
The browser reads that stream with fetch() rather than EventSource so that the token
travels in the Authorization header (EventSource cannot send headers), never in the URL.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from functools import cache
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from breaker.api._models import breaker_out, pool_out
from breaker.api._service import ApiService

STREAM_TICK = 0.2  # how often the stream looks for a change: the page lags by at most this
KEEPALIVE = 10.0  # a comment line this often keeps proxies from closing an idle stream
HISTORY_ON_PAGE = 8  # events per breaker shown on the page


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("breaker.api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("status.html")


def snapshot(service: ApiService) -> dict[str, Any]:
    """What the page draws: every breaker and pool as the API shows it, plus RTTs and
    recent history."""
    breakers = []
    for name in service.names():
        item = breaker_out(service.status(name)).model_dump()
        item["rtts"] = [
            round(p.rtt * 1000, 3) if p.rtt is not None else None
            for p in service.recent_probes(name)
        ]
        item["history"] = service.recent_events(name)[:HISTORY_ON_PAGE]
        breakers.append(item)
    for name in service.pool_names():  # a pool's card lists its members; it has no probe
        item = pool_out(service.pool_status(name)).model_dump()
        item["rtts"] = []
        item["history"] = service.recent_events(name)[:HISTORY_ON_PAGE]
        breakers.append(item)
    return {"breakers": breakers, "redis_up": service.redis_up, "now": service.wall()}


def _fingerprint(snap: dict[str, Any]) -> tuple[Any, ...]:
    """Everything but the clock: a new probe, verdict, force or Redis status is a change."""
    return (
        snap["redis_up"],
        tuple(
            (b["epoch"], b["state"], b["admit"], b["forced"] is not None, len(b["history"]))
            + ((b["last_probe"]["at"],) if b["last_probe"] else ())
            for b in snap["breakers"]
        ),
    )


def add_status_page(app: FastAPI, service: ApiService) -> None:
    """Routes on the app itself, not an included router: the API's Gate sees each route
    (the shell is open; the stream is a read, so it needs a token when open_reads is off)."""

    @app.get(
        "/",
        response_class=HTMLResponse,
        summary="Status page",
        responses={200: {"description": "the status page (HTML, no data: it reads the stream)"}},
    )
    async def status_page() -> HTMLResponse:
        """Every breaker at a glance, updated live; no CDN, no build step."""
        return HTMLResponse(
            _template().render(title="breaker status"),  # no names: reads may need a token
            headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
        )

    # Not in the OpenAPI schema: a stream that never ends would hang schema-driven clients
    # and fuzzers. docs/api.md documents it: 200 text/event-stream, 401 like every read.
    @app.get("/v1/page/stream", response_class=StreamingResponse, include_in_schema=False)
    async def stream(request: Request) -> StreamingResponse:
        """A snapshot of every breaker now, then again within STREAM_TICK of every change."""
        return StreamingResponse(
            _events(service, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


async def _events(service: ApiService, request: Request) -> AsyncIterator[str]:
    last: tuple[Any, ...] | None = None
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        snap = snapshot(service)
        fingerprint = _fingerprint(snap)
        if fingerprint != last:
            last = fingerprint
            quiet_since = time.monotonic()
            yield f"data: {json.dumps(snap, separators=(',', ':'))}\n\n"
        elif time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        await asyncio.sleep(STREAM_TICK)


# The page's own inline script and style only; nothing is loaded from anywhere else.
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
