"""Tokens and an in-process client the API tests share."""

from __future__ import annotations

import httpx

from breaker.api import TokenRegistry, create_app
from breaker.service import Service

OPERATE = "operate-token-0123456789"
READ = "read-only-token-0123456789"
TOKENS = TokenRegistry([("alice", "operate", OPERATE), ("viewer", "read", READ)])
AUTH = {"Authorization": f"Bearer {OPERATE}"}


def client_for(
    service: Service, tokens: TokenRegistry = TOKENS, open_reads: bool = True
) -> httpx.AsyncClient:
    """The API over `service`, called in-process (no socket)."""
    app = create_app(service, tokens, open_reads)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://breaker")
