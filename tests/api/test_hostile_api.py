"""Hostile requests get a clear 4xx, never a 500, and never cost a body read before auth."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from breaker._logging import KeyValueFormatter
from breaker.api import TokenRegistry, create_app
from breaker.api._gate import MAX_BODY
from breaker.service import Service
from tests.api.helpers import AUTH, OPERATE, READ, TOKENS, client_for

FORCE = "/v1/breakers/presence/force"


@pytest.mark.parametrize("since", ["nan", "NaN", "inf", "-inf", "1e308", "-1"])
async def test_history_since_not_finite_or_out_of_range_is_422_naming_it(
    service: Service, since: str
) -> None:
    async with client_for(service) as client:
        response = await client.get("/v1/breakers/presence/history", params={"since": since})
    assert response.status_code == 422, f"expected 422 for since={since}, got {response.text}"
    assert response.json()["error"].startswith("query.since"), response.text


@pytest.mark.parametrize("ttl", ["NaN", "Infinity", "-Infinity", "1e308"])
async def test_force_with_non_finite_ttl_is_422_not_500(service: Service, ttl: str) -> None:
    raw = f'{{"state": "open", "ttl": {ttl}, "reason": "x"}}'
    async with client_for(service) as client:
        response = await client.put(
            FORCE, content=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
    assert response.status_code == 422, f"expected 422 for ttl={ttl}, got {response.text}"
    assert response.json()["error"].startswith("body"), response.text
    assert service.status("presence").verdict.force is None


@pytest.mark.parametrize(
    "reason",
    ["line\r\nforged=1", "tab\tinside", "nul\x00", "esc\x1b[31m", "nel\x85", "sep\u2028x", "   "],
    ids=["crlf", "tab", "nul", "ansi", "nel", "line-separator", "blank"],
)
async def test_force_reason_with_control_characters_is_422(service: Service, reason: str) -> None:
    async with client_for(service) as client:
        response = await client.put(
            FORCE, json={"state": "open", "ttl": 60, "reason": reason}, headers=AUTH
        )
    assert response.status_code == 422, f"expected 422 for {reason!r}, got {response.text}"
    assert response.json()["error"].startswith("body.reason"), response.text
    assert reason not in response.text, "the refused input must not be echoed"


async def test_force_reason_longer_than_500_characters_is_422(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.put(
            FORCE, json={"state": "open", "ttl": 60, "reason": "x" * 501}, headers=AUTH
        )
    assert response.status_code == 422 and response.json()["error"].startswith("body.reason")


async def asgi_call(
    app: FastAPI, method: str, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, int]:
    """Drive the app at the ASGI level; returns (status, body chunks the app pulled)."""
    pulled = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {
                "type": "http.request",
                "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), pulled


BIG = [b"x" * 65536] * 64  # 4 MiB


async def test_big_body_without_token_is_401_before_any_byte_is_read(service: Service) -> None:
    app = create_app(service, TOKENS)
    headers = {"content-type": "application/json", "content-length": str(64 * 65536)}
    status, pulled = await asgi_call(app, "PUT", FORCE, headers, BIG)
    assert (status, pulled) == (401, 0), f"expected 401 with no body read, got {status}, {pulled}"
    status, pulled = await asgi_call(
        app, "PUT", FORCE, {**headers, "authorization": f"Bearer {READ}"}, BIG
    )
    assert (status, pulled) == (403, 0), f"expected 403 with no body read, got {status}, {pulled}"


async def test_big_body_with_token_is_413_by_its_declared_length(service: Service) -> None:
    app = create_app(service, TOKENS)
    headers = {"content-length": str(64 * 65536), "authorization": f"Bearer {OPERATE}"}
    status, pulled = await asgi_call(app, "PUT", FORCE, headers, BIG)
    assert (status, pulled) == (413, 0), f"expected 413 with no body read, got {status}, {pulled}"


async def test_chunked_body_over_the_cap_is_413_after_reading_only_the_cap(
    service: Service,
) -> None:
    app = create_app(service, TOKENS)
    headers = {"transfer-encoding": "chunked", "authorization": f"Bearer {OPERATE}"}
    chunks = [b"x" * 1024] * 64
    status, pulled = await asgi_call(app, "PUT", FORCE, headers, chunks)
    limit = MAX_BODY // 1024 + 1
    assert status == 413 and pulled <= limit, f"expected 413 after <= {limit} chunks: {pulled}"


async def test_chunked_body_under_the_cap_is_accepted(service: Service) -> None:
    app = create_app(service, TOKENS)
    headers = {
        "transfer-encoding": "chunked",
        "authorization": f"Bearer {OPERATE}",
        "content-type": "application/json",
    }
    body = b'{"state": "open", "ttl": 60, "reason": "chunked"}'
    status, _ = await asgi_call(app, "PUT", FORCE, headers, [body[:10], body[10:]])
    assert status == 200, f"expected 200, got {status}"


async def test_unparsable_json_is_a_4xx_naming_the_body(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.put(
            FORCE, content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
        )
    assert response.status_code == 422 and response.json()["error"].startswith("body")


async def test_405_allow_header_lists_every_method_of_the_path(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.post(FORCE, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, PUT", response.headers.get("allow")


async def test_overlong_breaker_name_is_422_and_not_echoed(service: Service) -> None:
    async with client_for(service) as client:
        response = await client.get("/v1/breakers/" + "a" * 5000)
    assert response.status_code == 422 and len(response.text) < 1000, response.text[:200]


@pytest.mark.parametrize(
    ("path", "closed"),
    [
        ("/v1/breakers", True),
        ("/v1/breakers/presence/allow", True),
        ("/openapi.json", True),
        ("/docs", True),
        ("/redoc", True),
        ("/healthz", False),
        ("/readyz", False),
        ("/metrics", False),
    ],
)
async def test_open_reads_off_closes_reads_and_the_api_description_not_health_or_metrics(
    service: Service, path: str, closed: bool
) -> None:
    async with client_for(service, open_reads=False) as client:
        anonymous = await client.get(path)
        wrong = await client.get(path, headers={"Authorization": "Bearer wrong-token-000000000"})
        viewer = await client.get(path, headers={"Authorization": f"Bearer {READ}"})
    seen = (anonymous.status_code, wrong.status_code)
    if closed:
        assert seen == (401, 401), f"expected {path} closed without a token, got {seen}"
    else:
        assert 401 not in seen, f"expected {path} open, got {seen}"
    assert viewer.status_code in (200, 503), f"{path} with a read token: {viewer.status_code}"


async def test_a_route_added_later_is_closed_by_default_when_reads_are_closed(
    service: Service,
) -> None:
    app = create_app(service, TOKENS, open_reads=False)

    @app.get("/status")
    async def status() -> dict[str, str]:
        return {"page": "secret-ish"}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://breaker"
    ) as client:
        anonymous = await client.get("/status")
        viewer = await client.get("/status", headers={"Authorization": f"Bearer {READ}"})
    assert (anonymous.status_code, viewer.status_code) == (401, 200)


async def test_writes_refused_without_tokens_even_with_open_reads(service: Service) -> None:
    async with client_for(service, TokenRegistry([])) as client:
        response = await client.put(
            FORCE, json={"state": "open", "ttl": 60, "reason": "x"}, headers=AUTH
        )
    assert response.status_code == 401 and "writes are disabled" in response.json()["error"]


def test_text_logs_keep_one_event_per_line_whatever_the_values() -> None:
    record = logging.makeLogRecord(
        {"msg": "breaker.force", "levelname": "INFO", "reason": "a\nforged=1", "actor": "x\r"}
    )
    line = KeyValueFormatter().format(record)
    assert "\n" not in line and "\r" not in line, f"expected one line, got {line!r}"
    assert 'reason="a\\nforged=1"' in line, line
