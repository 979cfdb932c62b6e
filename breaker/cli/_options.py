"""The options every on-call command takes (status, force, release, history, check).

`--json`, `--url`, `--token`, `--token-file` and `--timeout` are declared once, here:
`@api_options()` adds them to a command's signature, `--json` where the command declares
`opts` and the Sidecar panel last, so typer shows and parses them as before; the command
gets one `ApiOptions` value.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from breaker.cli._app import duration_option
from breaker.client import DEFAULT_TIMEOUT, DEFAULT_URL, AsyncClient, Client, read_token

UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="BREAKER_URL", help="the sidecar's API", rich_help_panel="Sidecar"
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="API token (default: $BREAKER_API_TOKEN); never printed",
        show_default=False,
        rich_help_panel="Sidecar",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="BREAKER_API_TOKEN_FILE",
        help="read the API token from this file",
        rich_help_panel="Sidecar",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def _timeout_option(shown: str) -> Any:
    return Annotated[
        float,
        duration_option(
            "--timeout", "how long to wait for the sidecar", shown=shown, panel="Sidecar"
        ),
    ]


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """Where the sidecar is, how to authenticate, how long to wait, how to print."""

    url: str
    token: str | None
    token_file: Path | None
    timeout: float
    as_json: bool

    def client(self) -> Client:
        return Client(self.url, read_token(self.token, self.token_file), self.timeout)

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.url, read_token(self.token, self.token_file), self.timeout)


Command = Callable[..., None]


def api_options(
    *, timeout: float = DEFAULT_TIMEOUT, timeout_shown: str = "3s"
) -> Callable[[Command], Command]:
    """Give the command an `opts: ApiOptions` parameter, filled from the shared options."""

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        as_json = inspect.Parameter(
            "as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption
        )
        params = [  # --json goes where the command put `opts`, the Sidecar panel last
            as_json.replace(kind=p.kind) if p.name == "opts" else p for p in own.parameters.values()
        ]
        params += [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, a, d in (
                ("url", UrlOption, DEFAULT_URL),
                ("token", TokenOption, None),
                ("token_file", TokenFileOption, None),
                ("timeout", _timeout_option(timeout_shown), timeout),
            )
        ]

        @functools.wraps(command)
        def run(
            *args: Any,
            as_json: bool,
            url: str,
            token: str | None,
            token_file: Path | None,
            timeout: float,
            **kwargs: Any,
        ) -> None:
            opts = ApiOptions(url, token, token_file, timeout, as_json)
            command(*args, opts=opts, **kwargs)

        signature = own.replace(parameters=params)
        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        run.__annotations__["return"] = None
        return run

    return decorate
