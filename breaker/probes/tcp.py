"""TCP probe: can a connection be opened? The cheapest signal, for non-SIP dependencies."""

from __future__ import annotations

import asyncio
import logging
import time

from breaker._config import BreakerConfig
from breaker.probes._base import ProbeResult
from breaker.probes.dns import SipResolver

log = logging.getLogger(__name__)


class TcpProbe:
    """Alive if host:port accepts a connection within the timeout; it is closed at once."""

    def __init__(self, cfg: BreakerConfig, *, resolver: SipResolver | None = None) -> None:
        if cfg.target.kind != "tcp" or cfg.target.port is None:
            raise ValueError(f"TcpProbe needs a tcp://host:port target, got {cfg.target.display!r}")
        self._cfg = cfg
        self._host = cfg.target.host
        self._port = cfg.target.port
        self._resolver = resolver or SipResolver()

    async def check(self) -> ProbeResult:
        try:
            return await self._check()
        except Exception as exc:  # check() never raises: a bug must not kill the breaker
            log.exception("TCP probe of %s failed unexpectedly", self._cfg.target.display)
            return _result(False, "error", None, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        return None

    async def _check(self) -> ProbeResult:
        cfg = self._cfg
        phase = "dns"
        try:
            async with asyncio.timeout(cfg.timeout):
                resolution = await self._resolver.resolve_host(
                    self._host, self._port, lifetime=cfg.timeout
                )
                if not resolution.ok:
                    return _result(False, "dns", None, resolution.error or "no address")
                ip, port = resolution.addresses[0]
                phase = "connect"
                start = time.monotonic()
                _, writer = await asyncio.open_connection(ip, port)
                rtt = time.monotonic() - start
        except TimeoutError:
            if phase == "dns":
                return _result(False, "dns", None, f"DNS resolution of {self._host} too slow")
            return _result(False, "timeout", None, f"no connection within {cfg.timeout:g} s")
        except ConnectionRefusedError:
            return _result(
                False, "connect-refused", None, f"connection to {cfg.target.display} refused"
            )
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            return _result(False, "connection-reset", None, str(exc))
        except OSError as exc:
            return _result(False, "error", None, f"connecting to {cfg.target.display}: {exc}")
        writer.close()
        if rtt > cfg.slow_threshold:
            limit = cfg.slow_threshold * 1000
            detail = f"connected after {rtt * 1000:.0f} ms (slow above {limit:.0f} ms)"
            return _result(False, "slow", rtt, detail)
        return _result(True, "ok", rtt, f"connected to {ip}:{port}")


def _result(ok: bool, reason: str, rtt: float | None, detail: str) -> ProbeResult:
    return ProbeResult(ok=ok, reason=reason, rtt=rtt, at=time.time(), detail=detail)
