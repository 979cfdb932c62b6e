"""Real processes on loopback for the tests, the benchmarks and the lab: one home for each.

Not part of the product (the wheel ships `breaker*` only). One concept per module:

- `procs`: a child process in its own session (`Child`), ports, `require`, `LabError`.
- `waiting`: `wait_until` (blocking) and `eventually` (asyncio), always with a deadline.
- `cpu`: CPU seconds of a process or a process group, from /proc.
- `redis`: a throw-away redis-server.
- `kamailio`: a Kamailio (the shipped proxy, the presence server, any cfg), its defines.
- `verdicts`: Kamailio's `event=breaker.verdict` log line, and a verdict writer that
  stores the hash through `breaker.store._contract` as the sidecar does.
- `sidecar`: `breaker serve` with a config written by `sidecar_toml`.
- `sipp`: one sipp UAC run and what it achieved.
- `udp`: one asyncio datagram endpoint that hands every datagram to a callback.
- `sip_standin`: a SIP server standing in for a presence server (freeze/resume),
  in-process or as its own process (`python -m testbed.sip_standin`).
"""
