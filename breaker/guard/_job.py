"""The guarded command's process group: start it, reap it, signal it, wait until it is gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence

from breaker.guard._prctl import become_subreaper, die_with_parent

GROUP_POLL = 0.05  # how often to look whether a stopped job's process group is gone
KILL_WAIT = 5.0  # after SIGKILL, how long to wait for the kernel to reap


class Job:
    """COMMAND in its own session and process group, with the guard as its subreaper.

    As subreaper the guard inherits the job's orphans (`sleep 300 &` in a script whose
    shell died) and reaps them itself, so "the job is gone" means gone, even under a
    container init that reaps slowly or never.
    """

    def __init__(self, argv: Sequence[str], child_setup: Callable[[], None] | None = None) -> None:
        """`child_setup` runs in the child after setsid, before exec (and before the
        die-with-the-guard set-up)."""
        become_subreaper()
        steps = [step for step in (child_setup, die_with_parent()) if step is not None]

        def preexec() -> None:
            for step in steps:
                step()

        self._popen = subprocess.Popen(  # stdin/stdout/stderr inherited: passed through
            list(argv), start_new_session=True, preexec_fn=preexec
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
