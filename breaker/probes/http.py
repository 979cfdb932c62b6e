"""HTTP probe: GET a health URL on a client kept for the probe's life (connection reuse)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

import httpx

from breaker._config import REDACTED, BreakerConfig
from breaker.probes._base import ProbeResult

log = logging.getLogger(__name__)


class HttpProbe:
    """Alive iff the status is in `cfg.expect_status`, within `cfg.timeout` all told."""

    def __init__(self, cfg: BreakerConfig, *, client: httpx.AsyncClient | None = None) -> None:
        if cfg.target.kind != "http":
            raise ValueError(f"HttpProbe needs an http(s):// target, got {cfg.target.display!r}")
        self._cfg = cfg
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(cfg.timeout),
            follow_redirects=False,
            trust_env=False,  # a health check must not wander through HTTP_PROXY
            headers={"User-Agent": "breaker"},
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        )

    async def check(self) -> ProbeResult:
        try:
            result = await self._check()
        except Exception as exc:  # check() never raises: a bug must not kill the breaker
            # no log.exception: a traceback can carry the URL, password included
            log.error(
                "probe.http.unexpected_error",
                extra={"target": self._cfg.target.display, "error": self._scrub(repr(exc))},
            )
            result = _result(False, "error", None, f"{type(exc).__name__}: {exc}")
        return dataclasses.replace(result, detail=self._scrub(result.detail))

    def _scrub(self, text: str) -> str:
        """httpx may quote the request URL in an error: never let its password out."""
        target = self._cfg.target
        text = text.replace(target.url, target.display)
        password = urlsplit(target.url).password
        for secret in {password, unquote(password)} if password else ():
            text = text.replace(secret, REDACTED)
        return text

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _check(self) -> ProbeResult:
        cfg = self._cfg
        start = time.monotonic()
        try:
            # httpx times each phase separately; the probe's timeout bounds them all
            async with asyncio.timeout(cfg.timeout):
                response = await self._client.get(cfg.target.url)
        except (TimeoutError, httpx.TimeoutException):
            return _result(False, "timeout", None, f"no response within {cfg.timeout:g} s")
        except httpx.ConnectError as exc:
            return _result(False, _connect_reason(exc), None, str(exc) or type(exc).__name__)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            return _result(False, "connection-reset", None, str(exc) or type(exc).__name__)
        except httpx.HTTPError as exc:
            return _result(False, "error", None, f"{type(exc).__name__}: {exc}")
        rtt = time.monotonic() - start
        line = f"{response.http_version} {response.status_code} {response.reason_phrase}".strip()
        if response.status_code not in cfg.expect_status:
            return _result(False, f"status {response.status_code}", rtt, line)
        if rtt > cfg.slow_threshold:
            limit = cfg.slow_threshold * 1000
            detail = f"{line} after {rtt * 1000:.0f} ms (slow above {limit:.0f} ms)"
            return _result(False, "slow", rtt, detail)
        return _result(True, "ok", rtt, line)


def _connect_reason(exc: BaseException) -> str:
    """Dig the OS error out of httpx's wrapped exceptions."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connect-refused"
        if isinstance(seen, socket.gaierror):
            return "dns"
        if isinstance(seen, ssl.SSLError):
            return "tls"
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    if "connection refused" in text:
        return "connect-refused"
    if "name or service not known" in text or "name resolution" in text:
        return "dns"
    if "ssl" in text or "certificate" in text:
        return "tls"
    return "error"


def _result(ok: bool, reason: str, rtt: float | None, detail: str) -> ProbeResult:
    return ProbeResult(ok=ok, reason=reason, rtt=rtt, at=time.time(), detail=detail)
