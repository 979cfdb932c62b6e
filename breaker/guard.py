"""Run a job only while a breaker lets traffic through: `breaker guard` and `Guard`.

The incident's batch job kept retrying against a locked-up presence server, piled up
instances, and flooded the server when it came back. A guarded job instead:

- starts only if the breaker lets traffic through (closed, or half_open with the
  job's key in the admitted share),
- runs as a single instance (a Redis lock with a TTL, renewed while it runs, so a
  crashed guard's lock expires by itself),
- is stopped as soon as the breaker opens (SIGTERM to its process group, SIGKILL
  after the grace period).

State source: the Redis the sidecar writes to, and nothing else. The verdict hash
`breaker:{NAME}` is read at start and at least every `poll` seconds, and at once on
every message on `breaker:events`. A missing hash (the sidecar died and the hash's
TTL ran out) or an unreachable Redis is "unknown", and `on_unknown` decides. One
dependency, shared with the lock, and the same contract Kamailio reads.

What to do is decided by breaker.core._guard (pure); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Self

from breaker._errors import GuardError as GuardError  # re-exported: callers import it here
from breaker._errors import GuardRefused, GuardStopped
from breaker.client._redis import (
    DEFAULT_PREFIX,
    EventFeed,
    JobLock,
    LockState,
    VerdictReader,
    check_cancelled,
    default_redis_url,
    redis_client,
)
from breaker.core._guard import Action, Cause, Decision, OnUnknown, decide
from breaker.store import guard_runs_key, state_key

log = logging.getLogger("breaker.guard")

SUBSCRIBE_WAIT = 2.0  # at start, how long to wait for the events subscription
GROUP_POLL = 0.05  # how often to look whether a stopped job's process group is gone
KILL_WAIT = 5.0  # after SIGKILL, how long to wait for the kernel to reap
STOP_WAIT = 2.0  # every step of the guard's own shutdown is bounded


class ExitCode(IntEnum):
    """What `breaker guard` exits with when it, not the job, decides the outcome."""

    UNKNOWN = 69  # EX_UNAVAILABLE: state unknown, not started (--on-unknown refuse)
    LOCKED = 73  # EX_CANTCREAT: another instance holds the lock, not started
    OPEN = 75  # EX_TEMPFAIL: the breaker does not let traffic through, not started
    STOPPED_OPEN = 79  # the breaker opened while the job ran; the job was stopped
    STOPPED_UNKNOWN = 80  # state unknown longer than the grace, or lock lost; job stopped
    NOT_EXECUTABLE = 126  # as the shell: the command exists but cannot be run
    NOT_FOUND = 127  # as the shell: no such command


# `breaker_guard_runs_total{outcome}`: what each ExitCode the guard decided is counted as
_OUTCOMES: dict[int, str] = {
    ExitCode.OPEN: "refused_open",
    ExitCode.LOCKED: "refused_locked",
    ExitCode.UNKNOWN: "refused_unknown",
    ExitCode.STOPPED_OPEN: "stopped_open",
    ExitCode.STOPPED_UNKNOWN: "stopped_unknown",
}
_REFUSED = {Cause.OPEN: ExitCode.OPEN, Cause.UNKNOWN: ExitCode.UNKNOWN}
_STOPPED = {Cause.OPEN: ExitCode.STOPPED_OPEN, Cause.UNKNOWN: ExitCode.STOPPED_UNKNOWN}


@dataclass(frozen=True, slots=True)
class GuardOptions:
    name: str  # the breaker
    key: str  # the job's key for the half_open share
    lock_key: str | None  # None: no single-instance lock
    lock_ttl: float = 60.0
    on_unknown: OnUnknown = OnUnknown.REFUSE
    grace: float = 10.0
    poll: float = 1.0
    redis_url: str = ""  # empty: BREAKER_REDIS_URL or the default
    prefix: str = DEFAULT_PREFIX


def default_lock_key(name: str, job: str, prefix: str = DEFAULT_PREFIX) -> str:
    """`breaker:{presence}:guard:vm-presence`: in the breaker's hash slot, one per job."""
    return f"{state_key(prefix, name)}:guard:{job}"


def job_name(argv: Sequence[str]) -> str:
    return Path(argv[0]).name if argv else "job"


# ---------------------------------------------------------------- watching


class _Watch:
    """Keeps the lock and re-reads the verdict until the policy says stop."""

    def __init__(self, opts: GuardOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.say = say
        self._client = redis_client(opts.redis_url or default_redis_url(), opts.prefix)
        self._reader = VerdictReader(self._client, opts.name, opts.prefix)
        self._wake = asyncio.Event()
        self._feed = EventFeed(self._client, opts.name, self._wake.set, opts.prefix)
        self._feed_task: asyncio.Task[None] | None = None
        self._lock = JobLock(self._client, opts.lock_key, opts.lock_ttl) if opts.lock_key else None
        self._renew_at = 0.0
        self._unknown_since: float | None = None
        self._last: Decision | None = None

    async def start(self) -> None:
        """Return if the job may start; raise GuardRefused otherwise."""
        self._feed_task = asyncio.create_task(self._feed.run(), name="guard:events")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_WAIT):
                await self._feed.ready.wait()
        decision = await self._look(running=False)
        if decision.action is Action.REFUSE:
            raise GuardRefused(_REFUSED[decision.cause], decision.message)
        if self._lock is not None:
            await self._take_lock()

    async def _take_lock(self) -> None:
        assert self._lock is not None
        state = await self._lock.acquire()
        if state is LockState.BUSY:
            left = await self._lock.ttl_left()
            expires = f", expires in {left:.0f}s unless renewed" if left else ""
            raise GuardRefused(
                ExitCode.LOCKED,
                f"another instance holds the lock {self._lock.key}{expires}; not started",
            )
        if state is LockState.UNKNOWN:
            if self.opts.on_unknown is OnUnknown.REFUSE:
                raise GuardRefused(
                    ExitCode.UNKNOWN,
                    f"cannot take the lock {self._lock.key}: Redis unreachable; "
                    "not started (--on-unknown refuse)",
                )
            self.say(f"cannot take the lock {self._lock.key} (Redis unreachable); running without")
        self._renew_at = time.monotonic() + self._renew_period(state)

    async def until_stop(self) -> GuardStopped:
        """Watch while the job runs; return (never raise) the reason to stop it."""
        while True:
            check_cancelled()  # in case a library swallowed the stop request
            now = time.monotonic()
            wait = self.opts.poll
            if self._lock is not None:
                wait = max(0.0, min(wait, self._renew_at - now))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            if self._lock is not None and time.monotonic() >= self._renew_at:
                state = await self._lock.renew()
                self._renew_at = time.monotonic() + self._renew_period(state)
                if state is LockState.BUSY:
                    return GuardStopped(
                        ExitCode.STOPPED_UNKNOWN,
                        f"lost the lock {self._lock.key} to another instance; stopping the job",
                    )
            decision = await self._look(running=True)
            if decision.action is Action.STOP:
                return GuardStopped(_STOPPED[decision.cause], decision.message)

    async def _look(self, running: bool) -> Decision:
        reading = await self._reader.read()
        now = time.monotonic()
        if reading.known:
            self._unknown_since = None
        elif self._unknown_since is None:
            self._unknown_since = now
        decision = decide(
            reading,
            running=running,
            key=self.opts.key,
            on_unknown=self.opts.on_unknown,
            unknown_for=now - self._unknown_since if self._unknown_since is not None else 0.0,
            grace=self.opts.grace,
        )
        previous, self._last = self._last, decision
        changed = previous is None or previous.cause is not decision.cause
        if changed and decision.action in (Action.START, Action.KEEP):
            if decision.cause is Cause.UNKNOWN:
                self.say(decision.message)
            elif previous is not None and previous.cause is Cause.UNKNOWN:
                self.say(f"state known again: {decision.message}")
        return decision

    def _renew_period(self, state: LockState) -> float:
        ttl = self.opts.lock_ttl
        return ttl / 3 if state is LockState.HELD else min(self.opts.poll, ttl / 3)

    async def count(self, outcome: str) -> None:
        """Best effort: HINCRBY the outcome so the sidecar can export it (docs/metrics.md)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(0.5):
                await self._client.hincrby(
                    guard_runs_key(self.opts.prefix, self.opts.name), outcome
                )

    async def close(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.wait([self._feed_task], timeout=STOP_WAIT)
        if self._lock is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._lock.release()
        with contextlib.suppress(Exception):
            await self._client.aclose()


# ---------------------------------------------------------------- a command


async def run_command(
    argv: Sequence[str],
    opts: GuardOptions,
    *,
    say: Callable[[str], None],
    quiet: bool = False,
) -> int:
    """`breaker guard`: the exit code (the job's own, or an ExitCode)."""
    watch = _Watch(opts, say)
    try:
        try:
            await watch.start()
        except GuardRefused as exc:
            if not (quiet and exc.exit_code in (ExitCode.OPEN, ExitCode.LOCKED)):
                say(str(exc))
            await watch.count(_OUTCOMES.get(exc.exit_code, "refused_unknown"))
            return exc.exit_code
        try:
            job = _Job(argv)
        except FileNotFoundError:
            say(f"cannot run {argv[0]!r}: command not found")
            return ExitCode.NOT_FOUND
        except OSError as exc:
            say(f"cannot run {argv[0]!r}: {exc.strerror or exc}")
            return ExitCode.NOT_EXECUTABLE
        code = await _supervise(job, watch, opts.grace, say)
        # only the stop codes: a job may exit 75 (EX_TEMPFAIL) itself, which is "ran"
        stopped = code in (ExitCode.STOPPED_OPEN, ExitCode.STOPPED_UNKNOWN)
        await watch.count(_OUTCOMES[code] if stopped else "ran")
        return code
    finally:
        await watch.close()


class _Job:
    """COMMAND in its own session and process group, with the guard as its subreaper.

    As subreaper the guard inherits the job's orphans (`sleep 300 &` in a script whose
    shell died) and reaps them itself, so "the job is gone" means gone, even under a
    container init that reaps slowly or never.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        _become_subreaper()
        self._popen = subprocess.Popen(  # stdin/stdout/stderr inherited: passed through
            list(argv), start_new_session=True, preexec_fn=_die_with_parent()
        )
        self.pid = self.group = self._popen.pid
        self.status: int | None = None  # as a shell reports it, once the leader exited
        self.exited = asyncio.Event()

    def reap(self) -> None:
        """Collect every exited child (the leader and adopted orphans); never blocks."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self._popen.returncode = code  # so Popen does not wait for it again
                self.status = 128 - code if code < 0 else code
                self.exited.set()

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.group, sig)

    def gone(self) -> bool:
        """The leader exited and nothing is left in its process group."""
        self.reap()
        if not self.exited.is_set():
            return False
        try:
            os.killpg(self.group, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    async def wait_gone(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while not self.gone():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(GROUP_POLL)
        return True

    async def terminate(self, grace: float) -> None:
        """SIGTERM the whole group, SIGKILL whatever is left after `grace`."""
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        if await self.wait_gone(grace):
            return
        self.signal(signal.SIGKILL)
        await self.wait_gone(KILL_WAIT)

    async def kill_after(self, grace: float) -> None:
        if not await self.wait_gone(grace):
            self.signal(signal.SIGKILL)


async def _supervise(job: _Job, watch: _Watch, grace: float, say: Callable[[str], None]) -> int:
    loop = asyncio.get_running_loop()
    escalation: list[asyncio.Task[None]] = []

    def forward(sig: int) -> None:
        """Pass SIGINT/SIGTERM/SIGHUP to the whole job; SIGKILL it if it lingers."""
        job.signal(sig)
        if not escalation:
            escalation.append(loop.create_task(job.kill_after(grace)))

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in forwarded:
        loop.add_signal_handler(sig, forward, sig)
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
        stopped = _stop_reason(stopper)
        say(f"{stopped.message}: SIGTERM now, SIGKILL after {grace:g}s")
        await job.terminate(grace)
        return stopped.exit_code
    finally:
        for task in (waiter, stopper, *escalation):
            task.cancel()
        await asyncio.wait([waiter, stopper, *escalation], timeout=STOP_WAIT)
        job.reap()
        for sig in (*forwarded, signal.SIGCHLD):
            loop.remove_signal_handler(sig)


def _stop_reason(watcher: asyncio.Task[GuardStopped]) -> GuardStopped:
    """What the watcher returned; if it crashed, that is a reason to stop too (fail safe)."""
    try:
        return watcher.result()
    except Exception as exc:
        return GuardStopped(
            ExitCode.STOPPED_UNKNOWN,
            f"the guard's watcher failed ({type(exc).__name__}: {exc}); stopping the job",
        )


_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        func: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return func


def _become_subreaper() -> None:
    prctl = _prctl()
    if prctl is not None:
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _die_with_parent() -> Callable[[], None] | None:
    """Linux: the job's leader gets SIGKILL if the guard dies (even by SIGKILL), so a
    crashed guard does not leave an unlocked job running. Its own children are not
    covered; use `exec` in wrapper scripts, or run under systemd for full cover."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the guard died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


# ---------------------------------------------------------------- Python jobs


class Guard:
    """Run a block of async code only while breaker `name` lets traffic through.

        async with Guard("presence", "vm-presence"):
            for mailbox in mailboxes:
                await send_mwi(mailbox)

    Entering raises GuardRefused (breaker open, another instance running, state
    unknown). If the breaker opens while the block runs, the block is cancelled and
    GuardStopped is raised from the `async with`. `job` names the lock
    (`breaker:{presence}:guard:vm-presence`) and is the key for the half_open share.
    """

    def __init__(
        self,
        name: str,
        job: str,
        *,
        key: str | None = None,
        lock: bool = True,
        lock_ttl: float = 60.0,
        on_unknown: OnUnknown | str = OnUnknown.REFUSE,
        grace: float = 10.0,
        poll: float = 1.0,
        redis_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.options = GuardOptions(
            name=name,
            key=key or job,
            lock_key=default_lock_key(name, job, prefix) if lock else None,
            lock_ttl=lock_ttl,
            on_unknown=OnUnknown(on_unknown),
            grace=grace,
            poll=poll,
            redis_url=redis_url or "",
            prefix=prefix,
        )
        self._say = say or log.warning
        self._watch: _Watch | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._task: asyncio.Task[object] | None = None
        self.stopped: GuardStopped | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        self._watch = _Watch(self.options, self._say)
        try:
            await self._watch.start()
        except BaseException:
            await self._watch.close()
            raise
        self._monitor = asyncio.create_task(self._watch_body(self._watch), name="guard:watch")
        return self

    async def _watch_body(self, watch: _Watch) -> None:
        watcher = asyncio.create_task(watch.until_stop(), name="guard:until_stop")
        try:
            await asyncio.wait([watcher])
        finally:
            watcher.cancel()
            await asyncio.wait([watcher], timeout=STOP_WAIT)
        self.stopped = _stop_reason(watcher)
        self._say(self.stopped.message)
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.wait([self._monitor], timeout=STOP_WAIT)
        if self._watch is not None:
            await self._watch.close()
        stopped = self.stopped
        if stopped is None or self._task is None:
            return
        ours = self._task.uncancel() == 0  # else the caller cancelled too: let that win
        if ours and exc_type in (None, asyncio.CancelledError):
            raise stopped from None
