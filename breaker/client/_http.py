"""The sidecar's HTTP API, async and sync, with every failure turned into one ClientError.

Both clients build the same requests and read the answers with the same code; only
the transport differs. The token goes in a header and nowhere else: not in errors,
not in reprs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from breaker._errors import ClientError, Forbidden, Unauthorized, UnknownBreaker, Unreachable
from breaker.client._models import (
    Allow,
    BreakerStatus,
    HistoryEvent,
    Overview,
    parse_allow,
    parse_history,
    parse_overview,
    parse_status,
)

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 3.0
TOKEN_HINT = "pass --token or --token-file, or set BREAKER_API_TOKEN"  # noqa: S105


def read_token(token: str | None = None, token_file: Path | str | None = None) -> str | None:
    """The token from an explicit value, a file, or BREAKER_API_TOKEN, in that order."""
    if token:
        return token.strip()
    if token_file is not None:
        try:
            value = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ClientError(f"cannot read token file {token_file}: {exc.strerror}") from None
        if not value:
            raise ClientError(f"token file {token_file} is empty")
        return value
    return os.environ.get("BREAKER_API_TOKEN", "").strip() or None


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    params: dict[str, str | float | int] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    expect: tuple[int, ...] = (200,)


def _path(name: str, tail: str = "") -> str:
    return f"/v1/breakers/{quote(name, safe='')}{tail}"


_Http = TypeVar("_Http", httpx.Client, httpx.AsyncClient)


class _Api(Generic[_Http]):
    """Requests and answers shared by both clients; a client names its httpx class."""

    _http_class: type[_Http]

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._http: _Http = self._http_class(base_url=self.url, timeout=timeout, trust_env=False)

    def __repr__(self) -> str:  # the token stays out of debug output
        return f"{type(self).__name__}(url={self.url!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "breaker-cli"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    @staticmethod
    def _list() -> _Call:
        return _Call("GET", "/v1/breakers")

    @staticmethod
    def _get(name: str) -> _Call:
        return _Call("GET", _path(name))

    @staticmethod
    def _allow(name: str, key: str | None) -> _Call:
        return _Call("GET", _path(name, "/allow"), {"key": key} if key else {}, expect=(200, 503))

    @staticmethod
    def _force(name: str, state: str, ttl: float, reason: str) -> _Call:
        body = {"state": state, "ttl": ttl, "reason": reason}
        return _Call("PUT", _path(name, "/force"), body=body)

    @staticmethod
    def _release(name: str) -> _Call:
        return _Call("DELETE", _path(name, "/force"))

    @staticmethod
    def _history(name: str, since: float | None, limit: int) -> _Call:
        params: dict[str, str | float | int] = {"limit": limit}
        if since is not None:
            params["since"] = since
        return _Call("GET", _path(name, "/history"), params)

    def _unreachable(self, exc: httpx.HTTPError) -> Unreachable:
        if isinstance(exc, httpx.TimeoutException):
            why = f"no answer within {self.timeout:g}s"
        else:
            why = str(exc).split("\n", 1)[0] or type(exc).__name__
        return Unreachable(
            f"cannot reach the sidecar at {_public(self.url)}: {why} "
            "(is `breaker serve` running there? set --url or BREAKER_URL)"
        )

    def _answer(self, call: _Call, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code in call.expect:
            if data is None:
                raise ClientError(
                    f"{call.method} {call.path}: the sidecar answered "
                    f"{response.status_code} without JSON; is {_public(self.url)} a breaker?"
                )
            return data
        error = data.get("error") if isinstance(data, dict) else None
        message = str(error) if error else response.reason_phrase or "no detail"
        status = response.status_code
        if status == 401:
            raise Unauthorized(f"401 unauthorized: {message}; {TOKEN_HINT}")
        if status == 403:
            raise Forbidden(f"403 forbidden: {message}")
        if status == 404 and call.path.startswith("/v1/breakers/"):
            raise UnknownBreaker(message)
        raise ClientError(f"{call.method} {call.path} failed with {status}: {message}")


class AsyncClient(_Api[httpx.AsyncClient]):
    """`async with AsyncClient(url, token) as api: await api.get("presence")`."""

    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return self._answer(call, response)

    async def overview(self) -> Overview:
        return parse_overview(await self._send(self._list()))

    async def get(self, name: str) -> BreakerStatus:
        return parse_status(await self._send(self._get(name)))

    async def allow(self, name: str, key: str | None = None) -> Allow:
        return parse_allow(await self._send(self._allow(name, key)))

    async def force(self, name: str, state: str, ttl: float, reason: str) -> BreakerStatus:
        return parse_status(await self._send(self._force(name, state, ttl, reason)))

    async def release(self, name: str) -> BreakerStatus:
        return parse_status(await self._send(self._release(name)))

    async def history(
        self, name: str, since: float | None = None, limit: int = 100
    ) -> list[HistoryEvent]:
        return parse_history(await self._send(self._history(name, since, limit)))


class Client(_Api[httpx.Client]):
    """The same API for synchronous code: `with Client(url, token) as api: api.get(...)`."""

    _http_class = httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return self._answer(call, response)

    def overview(self) -> Overview:
        return parse_overview(self._send(self._list()))

    def get(self, name: str) -> BreakerStatus:
        return parse_status(self._send(self._get(name)))

    def allow(self, name: str, key: str | None = None) -> Allow:
        return parse_allow(self._send(self._allow(name, key)))

    def force(self, name: str, state: str, ttl: float, reason: str) -> BreakerStatus:
        return parse_status(self._send(self._force(name, state, ttl, reason)))

    def release(self, name: str) -> BreakerStatus:
        return parse_status(self._send(self._release(name)))

    def history(
        self, name: str, since: float | None = None, limit: int = 100
    ) -> list[HistoryEvent]:
        return parse_history(self._send(self._history(name, since, limit)))


async def allowed(
    name: str,
    key: str | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the HTTP timeout, passed to httpx
) -> bool:
    """May a request for `key` (an AoR) go to breaker `name` now? Raises ClientError if
    the sidecar cannot say; decide your own fallback by catching it."""
    async with AsyncClient(url or default_url(), token or read_token(), timeout) as api:
        return (await api.allow(name, key)).allowed


def allowed_sync(
    name: str,
    key: str | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """`allowed` for synchronous code."""
    with Client(url or default_url(), token or read_token(), timeout) as api:
        return api.allow(name, key).allowed


def default_url() -> str:
    return os.environ.get("BREAKER_URL", "").strip() or DEFAULT_URL


def _public(url: str) -> str:
    """The URL without any user:password part, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
