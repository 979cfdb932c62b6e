"""The incident's batch job, replayed: PUBLISH message-summary for every mailbox, retrying.

    python -m lab.vm_presence --proxy 5060 --mailboxes 100 --rate 50 \
        --status /tmp/vm-presence-1.json

Like the real "vm-presence", an instance walks the mailboxes, sends one MWI PUBLISH
per mailbox to the proxy over UDP (RFC 3261 Timer E retransmissions: 500 ms
doubling to 4 s, Timer F 32 s), and re-attempts a mailbox whose PUBLISH failed
(408, 5xx or no answer) after `--retry-delay` (or the answer's Retry-After, if
longer), up to `--max-attempts`. At most `--window` PUBLISHes are in flight and
at most `--rate` are started per second, so against a healthy server a run takes
mailboxes / rate seconds; against a frozen one it takes far longer, which is how
instances piled up in the incident.

With `--resolver ADDR`, every attempt first finds the presence service the way the
incident's job did before its fix, with no cache: NAPTR `--service`, then its SRV,
then the A and AAAA records of the SRV target (`--dns-timeout` s per try, `--dns-tries` tries
per lookup, like a stub resolver). A lookup that times out fails the attempt, which
is re-attempted like a failed PUBLISH.

With `--transport tcp`, each of the `--window` PUBLISHes in flight has its own TCP
connection to the proxy, kept open from one mailbox to the next and re-opened when
it fails (no retransmissions: TCP is reliable; the answer is awaited up to Timer
F); the NAPTR it follows is then `SIP+D2T`.

Its counters go to `--status` (JSON, rewritten every 250 ms and at exit). Exit
status: 0 every mailbox published, 1 some gave up, 143 stopped by SIGTERM (which
is what `breaker guard` sends when the breaker opens).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rdatatype

from lab._sip import LOOPBACK, Outcome, SipUac, UacCounters, publish_mwi
from lab._tcp import TcpChannel, publish_mwi_tcp

STATUS_EVERY = 0.25
RETRY_AFTER_CAP = 60.0


@dataclass
class Job:
    mailboxes: int
    first: int
    rate: float
    window: int
    max_attempts: int
    retry_delay: float
    honor_retry_after: bool
    domain: str
    lookup: Lookup | None = None
    transport: str = "udp"
    counters: UacCounters = field(default_factory=UacCounters)
    published: int = 0
    gave_up: int = 0
    attempts: int = 0
    started_at: float = field(default_factory=time.time)
    state: str = "running"

    def status(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "state": self.state,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "mailboxes": self.mailboxes,
            "published": self.published,
            "gave_up": self.gave_up,
            "attempts": self.attempts,
            "dns_queries": self.lookup.queries if self.lookup else 0,
            "dns_timeouts": self.lookup.timeouts if self.lookup else 0,
            "dns_failures": self.lookup.failures if self.lookup else 0,
            **self.counters.as_dict(),
        }


@dataclass
class Lookup:
    """NAPTR -> SRV -> A + AAAA for the presence service, per message, at one nameserver."""

    nameserver: str
    service: str
    timeout: float
    tries: int
    naptr_service: str = "SIP+D2U"
    queries: int = 0
    timeouts: int = 0  # tries that got no answer
    failures: int = 0  # lookups that gave up (every try timed out, or no record)

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        for _ in range(self.tries):
            self.queries += 1
            try:
                return await dns.asyncquery.udp(
                    dns.message.make_query(name, rdtype), self.nameserver, self.timeout
                )
            except dns.exception.Timeout:
                self.timeouts += 1
        raise LookupError(f"{name}: no answer")

    async def resolve(self) -> tuple[str, int] | None:
        """The (address, port) of the presence service, or None when DNS failed."""
        try:
            naptr = await self._query(self.service, dns.rdatatype.NAPTR)
            srv_name = next(
                str(record.replacement)
                for record in naptr.answer[0]
                if record.service.decode().upper() == self.naptr_service
            )
            srv = await self._query(srv_name, dns.rdatatype.SRV)
            target, port = str(srv.answer[0][0].target), int(srv.answer[0][0].port)
            a = await self._query(target, dns.rdatatype.A)
            # a dual-stack stub (getaddrinfo, AF_UNSPEC) asks AAAA as well; none here
            await self._query(target, dns.rdatatype.AAAA)
            return str(a.answer[0][0].address), port
        except (LookupError, IndexError, StopIteration, dns.exception.DNSException):
            self.failures += 1
            return None


class _Pacer:
    """At most `rate` starts per second, evenly spaced (no bursts after a stall)."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate
        self.next_at = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.next_at = max(self.next_at, now)
        delay = self.next_at - now
        self.next_at += self.gap
        if delay > 0:
            await asyncio.sleep(delay)


async def run_job(job: Job, proxy: tuple[str, int]) -> None:
    uac = await SipUac.open(proxy, job.counters)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(job.first, job.first + job.mailboxes):
        queue.put_nowait(number)
    pacer = _Pacer(job.rate)

    async def worker() -> None:
        channel = TcpChannel(uac.remote) if job.transport == "tcp" else None
        try:
            while True:
                try:
                    number = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await _one_mailbox(job, uac, channel, pacer, f"mbox{number}")
        finally:
            if channel is not None:
                channel.close()

    try:
        await asyncio.gather(*(worker() for _ in range(min(job.window, job.mailboxes))))
    finally:
        uac.close()


async def _one_mailbox(
    job: Job, uac: SipUac, channel: TcpChannel | None, pacer: _Pacer, user: str
) -> None:
    for attempt in range(1, job.max_attempts + 1):
        await pacer.wait()
        job.attempts += 1
        outcome: Outcome | None
        if job.lookup is not None and await job.lookup.resolve() != uac.remote:
            outcome = None  # the presence service was not found (or not where expected)
        elif channel is not None:
            outcome = await publish_mwi_tcp(channel, job.counters, user, job.domain)
        else:
            outcome = await publish_mwi(uac, user, job.domain)
        if outcome is not None and outcome.status is not None and 200 <= outcome.status < 300:
            job.published += 1
            return
        if attempt == job.max_attempts:
            break
        delay = job.retry_delay
        retry_after = outcome.retry_after if outcome is not None else None
        if job.honor_retry_after and retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
        await asyncio.sleep(delay)
    job.gave_up += 1


def _write_status(path: Path, job: Job) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(job.status()))
    tmp.replace(path)


async def _main(args: argparse.Namespace) -> int:
    job = Job(
        mailboxes=args.mailboxes,
        first=args.first,
        rate=args.rate,
        window=args.window,
        max_attempts=args.max_attempts,
        retry_delay=args.retry_delay,
        honor_retry_after=not args.ignore_retry_after,
        domain=args.domain,
        transport=args.transport,
        lookup=(
            Lookup(
                args.resolver,
                args.service,
                args.dns_timeout,
                args.dns_tries,
                "SIP+D2T" if args.transport == "tcp" else "SIP+D2U",
            )
            if args.resolver
            else None
        ),
    )
    status = Path(args.status) if args.status else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def report() -> None:
        while True:
            if status is not None:
                _write_status(status, job)
            await asyncio.sleep(STATUS_EVERY)

    reporter = asyncio.create_task(report())
    work = asyncio.create_task(run_job(job, (LOOPBACK, args.proxy)))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(
        {work, stopper}, timeout=args.deadline, return_when=asyncio.FIRST_COMPLETED
    )
    if work in done:
        job.state = "finished"
        code = 0 if job.gave_up == 0 else 1
    elif stopper in done:
        job.state = "stopped"
        code = 143
    else:
        job.state = "deadline"
        code = 1
    for task in (work, stopper, reporter):
        task.cancel()
    for task in (work, stopper, reporter):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if status is not None:
        _write_status(status, job)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vm-presence", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--proxy", type=int, required=True, help="proxy UDP port on 127.0.0.1")
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--first", type=int, default=1, help="number of the first mailbox")
    parser.add_argument("--rate", type=float, default=50.0, help="PUBLISH started per second")
    parser.add_argument("--window", type=int, default=16, help="PUBLISH in flight at most")
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument("--retry-delay", type=float, default=1.0)
    parser.add_argument("--ignore-retry-after", action="store_true")
    parser.add_argument("--domain", default=LOOPBACK)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--resolver", help="nameserver address (port 53): look up per PUBLISH")
    parser.add_argument("--service", default="presence.lab.test", help="NAPTR name to look up")
    parser.add_argument("--dns-timeout", type=float, default=1.0, help="seconds per DNS try")
    parser.add_argument("--dns-tries", type=int, default=2, help="tries per DNS lookup")
    parser.add_argument("--status", help="JSON status file, rewritten every 250 ms")
    parser.add_argument("--deadline", type=float, default=600.0, help="hard stop after seconds")
    args = parser.parse_args(argv)
    if args.mailboxes < 1 or args.rate <= 0 or args.window < 1 or args.max_attempts < 1:
        parser.error("mailboxes, rate, window and max-attempts must be positive")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
