"""What the OpenAPI schema says beyond what FastAPI derives from the routes.

The error answers each route can give (their bodies are `ErrorOut`), the largest ttl any
breaker accepts, and which paths open_reads=false closes. tests/api/test_schemathesis.py
holds the live API to this schema.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from breaker.api._gate import MAX_BODY
from breaker.api._models import ErrorOut, ValidationErrorOut
from breaker.api._service import ApiService


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description, **extra}


Responses = dict[int | str, dict[str, Any]]
_CHALLENGE = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
UNAUTHORIZED: Responses = {401: _error("missing or wrong token", headers=_CHALLENGE)}
FORBIDDEN: Responses = {403: _error("the token's role may not do this")}
UNKNOWN: Responses = {404: _error("no breaker by that name; the message names the known ones")}
INVALID: Responses = {
    422: {"model": ValidationErrorOut, "description": "invalid parameter or body"}
}
UNPARSABLE: Responses = {400: _error("unparsable request")}
IS_POOL: Responses = {409: _error("a pool's verdict is derived: force or release its members")}
TOO_LARGE: Responses = {413: _error(f"body larger than {MAX_BODY} bytes")}


def document(app: FastAPI, service: ApiService, open_reads: bool) -> None:
    """Schema details FastAPI cannot derive: the largest ttl any breaker accepts, and which
    paths open_reads=false closes (it also closes /openapi.json and /docs themselves)."""
    max_ttl = service.max_force_ttl()

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
                description=(
                    "Reads need no token."
                    if open_reads
                    else "Reads, /openapi.json and /docs need a read or operate token."
                )
                + " /healthz, /readyz, /metrics and the status page's shell (/) are always open.",
            )
            ttl = schema["components"]["schemas"]["ForceIn"]["properties"]["ttl"]
            ttl["maximum"] = max_ttl
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    for route in app.routes:
        if isinstance(route, APIRoute):
            route.operation_id = route.name
