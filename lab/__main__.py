"""`python -m lab` (`make lab`): replay the incident on loopback, baseline vs protected.

A developer tool beside the product, not part of the `breaker` package (docs/lab.md).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lab import MODES, LabParams, LabResult, Mode, run_lab
from lab._lab import run_scenario
from lab._pool import PoolParams
from lab._pool_lab import POOL, PoolResult
from testbed.procs import LabError

SCENARIOS = ("incident", "pool")

app = typer.Typer(add_completion=False, no_args_is_help=False)


@app.command()
def lab(
    quick: Annotated[
        bool, typer.Option("--quick", help="a ≤ 60 s version (shorter timeline, fewer mailboxes)")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="results go to OUT/<timestamp>/")] = Path(
        "lab-results"
    ),
    mailboxes: Annotated[
        int | None, typer.Option("--mailboxes", min=1, help="mailboxes per vm-presence run")
    ] = None,
    freeze: Annotated[
        float | None,
        typer.Option("--freeze", min=1, help="seconds the presence server is locked up"),
    ] = None,
    normal: Annotated[
        float | None, typer.Option("--normal", min=1, help="seconds of normal traffic before")
    ] = None,
    settle: Annotated[
        float | None, typer.Option("--settle", min=1, help="seconds observed after the restart")
    ] = None,
    cycle: Annotated[
        float | None, typer.Option("--cycle", min=0.5, help="a new vm-presence run every CYCLE s")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=1, help="PUBLISH/s per vm-presence run")
    ] = None,
    capacity: Annotated[
        int | None,
        typer.Option("--capacity", min=1, help="presence server design limit, requests/s"),
    ] = None,
    rate_cap: Annotated[
        bool,
        typer.Option(
            "--rate-cap/--no-rate-cap",
            help="protected proxy also caps forwarding at CAPACITY/s (BREAKER_PRESENCE_MAX_RATE)",
        ),
    ] = True,
    calls: Annotated[
        float | None, typer.Option("--calls", min=0.1, help="background calls per second")
    ] = None,
    dns: Annotated[
        bool,
        typer.Option(
            "--dns/--no-dns",
            help="route every lookup through the rate-capped lab resolver (needs root)",
        ),
    ] = True,
    dns_cap: Annotated[
        int | None,
        typer.Option("--dns-cap", min=1, help="DNS queries/s the lab resolver lets through"),
    ] = None,
    sockets: Annotated[
        bool,
        typer.Option(
            "--sockets/--no-sockets",
            help="vm-presence and every other call (to a PBX) over TCP, with a connection limit",
        ),
    ] = False,
    tcp_max_connections: Annotated[
        int | None,
        typer.Option("--tcp-max-connections", min=4, help="the registrar's TCP connection limit"),
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="run one timeline: baseline or protected")
    ] = None,
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="incident: one presence server (the postmortem); pool: three behind "
            "dispatcher, one locks up (--normal/--freeze/--settle apply)",
        ),
    ] = "incident",
) -> None:
    """Replay the incident: presence server locks up, restarts; without, then with the breaker."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter("must be incident or pool", param_hint="--scenario")
    base = LabParams.quick() if quick else LabParams()
    params = base.with_overrides(
        mailboxes=mailboxes,
        freeze=freeze,
        normal=normal,
        settle=settle,
        cycle=cycle,
        rate=rate,
        capacity=capacity,
        calls_per_second=calls,
        rate_cap=rate_cap,
        dns=dns,
        dns_cap=dns_cap,
        sockets=sockets,
        tcp_max_connections=tcp_max_connections,
    )
    modes: tuple[Mode, ...] = MODES
    if only is not None:
        if only not in MODES:
            raise typer.BadParameter("must be baseline or protected", param_hint="--only")
        modes = ("baseline",) if only == "baseline" else ("protected",)
    result: LabResult | PoolResult
    if scenario == "pool":
        pool = PoolParams.quick() if quick else PoolParams()
        pool = pool.with_overrides(normal=normal, freeze=freeze, settle=settle)
        result = run_scenario(POOL, pool, out, modes=modes)
    else:
        result = run_lab(params, out, modes=modes)
    typer.echo("")
    typer.echo(result.summary)
    typer.echo(f"results: {result.results_path}")
    typer.echo(f"plot:    {result.plot_path}")
    typer.echo(f"summary: {result.summary_path}")


def main() -> None:
    """Usage errors as click prints them; a lab that cannot start: `lab: <one line>`, exit 2."""
    try:
        app(prog_name="python -m lab")
    except LabError as exc:
        typer.echo(f"lab: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
