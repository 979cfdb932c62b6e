"""A pool's verdict, derived inside Redis from its members' published verdicts.

Every sidecar that configures a pool runs this script right after its members'
votes (same pipeline, so it reads the hashes those votes just wrote). The script
is atomic, so however many sidecars run it, a change of the pool's state is seen
once: the first run after the change bumps the epoch (kept in the non-expiring
meta hash) and appends the one `transition` event; later runs find the state
already there and only refresh the hash.

The rule is breaker.core._pool's (its docstring draws it); tests/store pin that
both agree on every combination of member states. A member hash that is missing
or unreadable counts as a member that takes no traffic: unknown is not healthy.

The pool's keys and its members' keys sit in different hash slots, so this
script needs a standalone Redis (or Sentinel), not Redis Cluster (docs/redis-ha.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from breaker.core import State, Verdict
from breaker.store._fleet import EVENT_FIELDS
from breaker.store._lua import repair_types

# KEYS: pool hash, pool log, pool meta, then each member's hash.
# ARGV: 1 min_healthy, 2 state_ttl_ms, 3 log_maxlen, 4 channel, 5 contract, 6 pool name.
POOL_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
@REPAIR@local need = tonumber(ARGV[1])
local total = #KEYS - 3
local closed, capacity, wait = 0, 0, 0
for i = 4, #KEYS do
  local m = redis.call('HMGET', KEYS[i], 'state', 'admit', 'retry_after')
  local admit = tonumber(m[2])
  if m[1] ~= 'closed' and m[1] ~= 'open' and m[1] ~= 'half_open' then admit = nil end
  if admit and m[1] == 'closed' then closed = closed + 1 end
  if admit then capacity = capacity + math.max(0, math.min(100, admit)) end
  local ra = tonumber(m[3]) or 0
  if m[1] ~= 'closed' and ra > 0 and (wait == 0 or ra < wait) then wait = ra end
end
local st, admit, ra, reason
local counted = closed .. ' of ' .. total .. ' members closed (min_healthy ' .. need .. ')'
if closed >= need then
  st, admit, ra, reason = 'closed', 100, 0, counted
elseif capacity <= 0 then
  st, admit, reason = 'open', 0, 'no member can take traffic (0 of ' .. total .. ' closed)'
  ra = wait > 0 and wait or 1
else
  st, admit, reason = 'half_open', math.max(1, math.min(99, math.floor(capacity / need))), counted
  ra = wait > 0 and wait or 1
end

local m = redis.call('HMGET', KEYS[3], 'state', 'epoch', 'since_ms')
local h = redis.call('HMGET', KEYS[1], 'state', 'epoch')
local before = m[1] or h[1]
local epoch = math.max(tonumber(m[2]) or 0, tonumber(h[2]) or 0)
local since = tonumber(m[3]) or now
local changes = 0
if before ~= st then
  since = now
  if before == 'closed' or before == 'open' or before == 'half_open' then
    epoch = epoch + 1
    changes = 1
    local ev = {'transition', ARGV[6], before, st, st, admit, epoch,
      string.format('%.3f', now / 1000), reason, 'pool', '', '', ARGV[5]}
    local names = {@EVENT_FIELDS@}
    local kv, json = {}, {}
    for i, key in ipairs(names) do
      table.insert(kv, key)
      table.insert(kv, tostring(ev[i]))
      json[key] = ev[i]
    end
    json['until'] = cjson.null
    json['at'] = tonumber(json['at'])
    json['contract'] = tonumber(json['contract'])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(kv))
    redis.call('PUBLISH', ARGV[4], cjson.encode(json))
  end
end
local fields = {'state', st, 'admit', admit, 'epoch', epoch,
  'since', string.format('%.3f', since / 1000), 'reason', reason, 'retry_after', ra,
  'forced', '', 'forced_by', '', 'forced_reason', '', 'forced_until', '',
  'computed', st, 'updated', string.format('%.3f', now / 1000), 'contract', ARGV[5]}
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('HSET', KEYS[3], 'since_ms', since)
return {st, admit, epoch, since, reason, ra, changes, repaired}
""".replace("@EVENT_FIELDS@", ", ".join(f"'{f}'" for f in EVENT_FIELDS)).replace(
    "@REPAIR@", repair_types("hash", "stream", "hash")
)


@dataclass(frozen=True, slots=True)
class PoolItem:
    """One pool to re-derive, after its members' votes."""

    name: str
    members: tuple[str, ...]
    min_healthy: int
    ttl: float  # the pool hash's TTL, seconds

    def args(self, log_maxlen: int, channel: str, contract: int) -> list[str | int]:
        return [
            self.min_healthy,
            max(1, int(self.ttl * 1000)),
            log_maxlen,
            channel,
            contract,
            self.name,
        ]


@dataclass(frozen=True, slots=True)
class PoolOutcome:
    name: str
    verdict: Verdict | None  # the pool verdict now published, times in unix seconds
    changes: int = 0  # 1 when this run made the change (and wrote its event)
    repaired: bool = False
    error: str | None = None


def pool_outcome(name: str, reply: list[object]) -> PoolOutcome:
    """The script's reply: the pool verdict now published, and whether this run changed it."""
    st, admit, epoch, since, reason, ra, changes, repaired = reply[:8]
    state = State(str(st))
    verdict = Verdict(
        name=name,
        state=state,
        admit=int(str(admit)),
        epoch=int(str(epoch)),
        since=int(str(since)) / 1000,
        reason=str(reason),
        retry_after=int(str(ra)),
        computed=state,
        force=None,
    )
    return PoolOutcome(name, verdict, int(str(changes)), int(str(repaired)) == 1)
