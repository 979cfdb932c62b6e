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

What to do is decided by breaker.core._guard (pure); this package does the I/O:

    _exit.py       ExitCode, and what each guard-decided outcome is counted as
    _options.py    GuardOptions, the default lock key and job name
    _watch.py      the Redis watcher: verdict, events, lock renewal
    _job.py        the job's process group: start, reap, signal, wait until gone
    _prctl.py      Linux prctl: subreaper, die with the guard
    _supervise.py  `breaker guard COMMAND`: run_command and the supervisor loop
    _guard.py      `Guard`, the async context manager for Python jobs

The guard's exceptions live in breaker._errors with the rest of the tree.
"""

from breaker._errors import GuardError, GuardRefused, GuardStopped
from breaker.guard._exit import ExitCode
from breaker.guard._guard import Guard
from breaker.guard._options import GuardOptions, default_lock_key, job_name
from breaker.guard._supervise import run_command

__all__ = [
    "ExitCode",
    "Guard",
    "GuardError",
    "GuardOptions",
    "GuardRefused",
    "GuardStopped",
    "default_lock_key",
    "job_name",
    "run_command",
]
