"""`breaker guard COMMAND`: start the job if allowed, supervise it, count the outcome."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence

from breaker._errors import GuardRefused
from breaker.guard._exit import OUTCOMES, ExitCode
from breaker.guard._job import Job
from breaker.guard._options import GuardOptions
from breaker.guard._signals import Signals
from breaker.guard._watch import STOP_WAIT, Watch, stop_reason


async def run_command(
    argv: Sequence[str],
    opts: GuardOptions,
    *,
    say: Callable[[str], None],
    quiet: bool = False,
) -> int:
    """`breaker guard`: the exit code (the job's own, or an ExitCode, or 128 + N if
    signal N came before the job started)."""
    signals = Signals()
    signals.install()  # before anything else: no window where a signal kills the guard
    watch = Watch(opts, say)
    try:
        try:
            started = await signals.first(watch.start())
        except GuardRefused as exc:
            if not (quiet and exc.exit_code in (ExitCode.OPEN, ExitCode.LOCKED)):
                say(str(exc))
            await watch.count(OUTCOMES.get(exc.exit_code, "refused_unknown"))
            return exc.exit_code
        if not started:  # a signal came first: the job was never started
            assert signals.received is not None
            say(f"{signals.describe()} before the job started; not started")
            return 128 + signals.received
        try:
            with signals.blocked() as child_setup:
                job = Job(argv, child_setup)
        except FileNotFoundError:
            say(f"cannot run {argv[0]!r}: command not found")
            return ExitCode.NOT_FOUND
        except OSError as exc:
            say(f"cannot run {argv[0]!r}: {exc.strerror or exc}")
            return ExitCode.NOT_EXECUTABLE
        code = await supervise(job, watch, opts.grace, say, signals)
        # only the stop codes: a job may exit 75 (EX_TEMPFAIL) itself, which is "ran"
        stopped = code in (ExitCode.STOPPED_OPEN, ExitCode.STOPPED_UNKNOWN)
        await watch.count(OUTCOMES[code] if stopped else "ran")
        return code
    finally:
        await watch.close()
        signals.uninstall()


async def supervise(
    job: Job, watch: Watch, grace: float, say: Callable[[str], None], signals: Signals
) -> int:
    loop = asyncio.get_running_loop()
    escalation: list[asyncio.Task[None]] = []

    def forward(sig: int) -> None:
        """Pass SIGINT/SIGTERM/SIGHUP to the whole job; SIGKILL it if it lingers."""
        job.signal(sig)
        if not escalation:
            escalation.append(loop.create_task(job.kill_after(grace)))

    # signals that came during the fork are handled now, by a later turn of the loop
    signals.forward_to(forward)
    loop.add_signal_handler(signal.SIGCHLD, job.reap)
    job.reap()  # it may have exited before the handler was in place
    waiter = asyncio.create_task(job.exited.wait(), name="guard:job")
    stopper = asyncio.create_task(watch.until_stop(), name="guard:watch")
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if job.exited.is_set():
            assert job.status is not None
            if not job.gone():
                say("the job left processes in its process group; stopping them")
                await job.terminate(grace)
            return job.status
        stopped = stop_reason(stopper)
        say(f"{stopped}: SIGTERM now, SIGKILL after {grace:g}s")
        await job.terminate(grace)
        return stopped.exit_code
    finally:
        for task in (waiter, stopper, *escalation):
            task.cancel()
        await asyncio.wait([waiter, stopper, *escalation], timeout=STOP_WAIT)
        job.reap()
        signals.forward_to(job.signal)  # the job is gone: no escalation left to start
        loop.remove_signal_handler(signal.SIGCHLD)
