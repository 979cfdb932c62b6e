"""`breaker serve`: run the sidecar (probes, Redis publisher, HTTP API) until signalled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from breaker._config import Settings, load_settings
from breaker._logging import get_logger, setup_logging
from breaker.api import TokenRegistry, create_app, load_tokens
from breaker.cli._app import app
from breaker.service import Service

log = get_logger("breaker.serve")


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="BREAKER_CONFIG", help="TOML config file"),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="validate the config and exit")] = False,
) -> None:
    """Probe the targets, publish verdicts to Redis, serve the HTTP API."""
    settings = load_settings(config or Path("breaker.toml"))
    tokens = load_tokens(settings.api)
    if check:
        names = ", ".join(b.name for b in settings.breakers)
        typer.echo(f"config ok: {len(settings.breakers)} breaker(s): {names}")
        return
    setup_logging(settings.logging.level, settings.logging.format)
    if tokens.empty:
        log.warning(
            "api.no_operate_token", extra={"hint": "set BREAKER_API_TOKEN to allow force/release"}
        )
    asyncio.run(_serve(settings, tokens))


async def _serve(settings: Settings, tokens: TokenRegistry) -> None:
    service = Service(settings)
    api = create_app(service, tokens, settings.api.open_reads)
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    await service.start()
    log.info("api.listening", extra={"host": settings.api.host, "port": settings.api.port})
    try:
        await server.serve()
    finally:
        await service.stop()
