"""Several sidecars, one verdict: each observer's vote and the fleet verdict, in one script.

Every observer (sidecar) runs its own state machine on its own probes and sends its
computed state as a vote with an expiry. The script below, atomic and confined to
the breaker's `{name}` slot, keeps the live votes in `breaker:{NAME}:votes`, derives
the fleet's computed state with the quorum, runs the one fleet ramp and the fleet-wide
force on Redis's clock (TIME: the one clock every writer shares), bumps the one epoch,
and appends one audit event per change of the verdict, whichever observer caused it.

    fleet closed    --open votes >= quorum-->  open
    fleet open      --open votes <  quorum-->  half_open (ramp starts now)
    fleet half_open --open votes >= quorum-->  open
    fleet half_open --slow_start elapsed----->  closed

With one live observer the quorum is 1 and the fleet follows that observer, as a
single sidecar always did.
"""

from __future__ import annotations

from dataclasses import dataclass

from breaker.core import Force, Policy, State, Verdict
from breaker.store._lua import repair_types

EVENT_FIELDS = (
    "event", "name", "from", "to", "state", "admit", "epoch", "at", "reason", "actor",
    "forced", "until", "contract",
)  # fmt: skip

# KEYS: hash, log, meta, votes.
# ARGV: 1 observer, 2 vote, 3 vote reason, 4 vote_ttl_ms, 5 settings, 6 quorum,
# 7 state_ttl_ms, 8 log_maxlen, 9 channel, 10 slow_start_ms, 11 initial_admit,
# 12 retry_after_max, 13 recover_ms, 14 force op ('' | set | release), 15 force state,
# 16 force ttl_ms, 17 actor, 18 force reason, 19 contract, 20 breaker name,
# 21 instance (a nonce per sidecar process).
# A vote is `state|expires_ms|instance|settings`; a vote without the instance part
# (`state|expires_ms|settings`, older sidecars) still counts.
FLEET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
@REPAIR@local function parse(v)
  local st, exp, rest = string.match(v, '^([a-z_]+)|(%d+)|(.*)$')
  local inst, fp = '', rest
  if rest and string.find(rest, '|', 1, true) then
    inst, fp = string.match(rest, '^([^|]*)|(.*)$')
  end
  return st, tonumber(exp), inst, fp
end
local vote_ttl = tonumber(ARGV[4])
local twin = 0
local prev = redis.call('HGET', KEYS[4], ARGV[1])
if prev then
  local pst, pexp, pinst = parse(prev)
  if pexp and pexp > now and pinst ~= '' and pinst ~= ARGV[21] then twin = 1 end
end
redis.call('HSET', KEYS[4], ARGV[1],
  ARGV[2] .. '|' .. (now + vote_ttl) .. '|' .. ARGV[21] .. '|' .. ARGV[5])
redis.call('PEXPIRE', KEYS[4], vote_ttl * 10)
local votes = redis.call('HGETALL', KEYS[4])
local live, open, other = 0, 0, ''
for i = 1, #votes, 2 do
  local st, exp, _, fp = parse(votes[i + 1])
  if (st ~= 'open' and st ~= 'closed' and st ~= 'half_open') or not exp or exp <= now then
    redis.call('HDEL', KEYS[4], votes[i])
  else
    live = live + 1
    if st == 'open' then open = open + 1 end
    if fp ~= ARGV[5] and other == '' then other = votes[i] .. '|' .. fp end
  end
end
local q = ARGV[6]
local need
if q == 'any' then need = 1
elseif q == 'all' then need = live
elseif q == 'majority' then need = math.floor(live / 2) + 1
else need = math.min(tonumber(q), live) end

local m = redis.call('HMGET', KEYS[3], 'computed', 'computed_reason', 'reason', 'epoch',
  'since_ms', 'ramp_start_ms', 'forced', 'forced_by', 'forced_reason', 'forced_until_ms', 'since')
local computed = m[1]
if computed ~= 'open' and computed ~= 'half_open' then computed = 'closed' end
local creason = m[2] or m[3] or 'start'
local epoch = tonumber(m[4]) or 0
local he = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
if he and he > epoch then epoch = he end
local since = tonumber(m[5]) or math.floor((tonumber(m[11]) or now / 1000) * 1000)
local ramp_start = tonumber(m[6]) or now
local forced = m[7] or ''
local fby, freason = m[8] or '', m[9] or ''
local funtil = tonumber(m[10]) or 0
if forced ~= 'open' and forced ~= 'closed' then forced = '' end
local slow = tonumber(ARGV[10])
local init = tonumber(ARGV[11])

local function effective()
  if forced ~= '' then return forced end
  return computed
end
local function admit_of(st)
  if st == 'open' then return 0 end
  if st == 'closed' then return 100 end
  if slow <= 0 then return 99 end
  local share = init + (100 - init) * (now - ramp_start) / slow
  return math.max(init, math.min(99, math.floor(share)))
end
local events = {}
local function event(kind, from, to, reason, actor)
  epoch = epoch + 1
  local st = effective()
  local untl = ''
  if forced ~= '' then untl = string.format('%.3f', funtil / 1000) end
  table.insert(events, {kind, ARGV[20], from, to, st, admit_of(st), epoch,
    string.format('%.3f', now / 1000), reason, actor, forced, untl, ARGV[19]})
end

local before = effective()
local why = 'quorum'
if ARGV[2] == 'open' then why = ARGV[3] end
if computed == 'closed' and open >= need then
  computed = 'open'; creason = why
  event('transition', 'closed', 'open', why, 'probe')
elseif computed == 'open' and open < need then
  computed = 'half_open'; creason = 'probes ok'; ramp_start = now
  event('transition', 'open', 'half_open', 'probes ok', 'probe')
elseif computed == 'half_open' then
  if open >= need then
    computed = 'open'; creason = why
    event('transition', 'half_open', 'open', why, 'probe')
  elseif now >= ramp_start + slow then
    computed = 'closed'; creason = 'recovered'
    event('transition', 'half_open', 'closed', 'recovered', 'probe')
  end
end
if ARGV[14] == 'set' then
  local b = effective()
  forced, funtil, fby, freason = ARGV[15], now + tonumber(ARGV[16]), ARGV[17], ARGV[18]
  event('force', b, forced, freason, fby)
elseif ARGV[14] == 'release' and forced ~= '' then
  local b = effective()
  forced, fby, freason, funtil = '', '', '', 0
  event('release', b, effective(), 'released', ARGV[17])
end
if forced ~= '' and now >= funtil then
  local b = effective()
  forced, fby, freason, funtil = '', '', '', 0
  event('expire', b, effective(), creason, 'sidecar')
end

local st = effective()
if st ~= before then since = now end
local admit = admit_of(st)
local ra = 0
if st ~= 'closed' then
  local wait
  if forced ~= '' then wait = (funtil - now) / 1000
  elseif st == 'open' then wait = tonumber(ARGV[13]) / 1000
  else wait = (ramp_start + slow - now) / 1000 end
  ra = math.max(1, math.min(tonumber(ARGV[12]), math.ceil(wait)))
end
local reason = creason
if forced ~= '' then reason = 'forced: ' .. freason end
local due = -1
if forced ~= '' then due = funtil - now end
if computed == 'half_open' and (due < 0 or ramp_start + slow - now < due) then
  due = math.max(0, ramp_start + slow - now)
end
local funtil_s = ''
if forced ~= '' then funtil_s = string.format('%.3f', funtil / 1000) end
local fields = {'state', st, 'admit', admit, 'epoch', epoch,
  'since', string.format('%.3f', since / 1000), 'reason', reason, 'retry_after', ra,
  'forced', forced, 'forced_by', fby, 'forced_reason', freason, 'forced_until', funtil_s,
  'computed', computed, 'updated', string.format('%.3f', now / 1000), 'contract', ARGV[19]}
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('HSET', KEYS[3], unpack(fields))
redis.call('HSET', KEYS[3], 'since_ms', since, 'ramp_start_ms', ramp_start,
  'forced_until_ms', funtil, 'computed_reason', creason)
local names = {@EVENT_FIELDS@}
for _, ev in ipairs(events) do
  local kv = {}
  local json = {}
  for i, key in ipairs(names) do
    table.insert(kv, key)
    table.insert(kv, tostring(ev[i]))
    json[key] = ev[i]
  end
  if json['until'] == '' then
    json['until'] = cjson.null
  else
    json['until'] = tonumber(json['until'])
  end
  json['at'] = tonumber(json['at'])
  json['contract'] = tonumber(json['contract'])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', unpack(kv))
  redis.call('PUBLISH', ARGV[9], cjson.encode(json))
end
return {st, admit, epoch, since, reason, ra, forced, fby, freason, funtil, computed, now,
  live, other, #events, repaired, twin, due}
""".replace("@EVENT_FIELDS@", ", ".join(f"'{f}'" for f in EVENT_FIELDS)).replace(
    "@REPAIR@", repair_types("hash", "stream", "hash", "hash")
)


@dataclass(frozen=True, slots=True)
class ForceOp:
    """A force or release taken by this sidecar's API, on its way to the fleet."""

    op: str  # "set" | "release"
    state: State | None
    ttl: float
    actor: str
    reason: str


@dataclass(frozen=True, slots=True)
class VoteItem:
    name: str
    observer: str
    vote: State  # this observer's computed state
    reason: str
    settings: str  # the probe settings other observers must share
    policy: Policy
    quorum: str
    vote_ttl: float  # seconds
    ttl: float  # the verdict hash's TTL, seconds
    instance: str  # this sidecar process: tells two sidecars sharing one observer id apart
    force_op: ForceOp | None = None

    def args(self, log_maxlen: int, channel: str, contract: int) -> list[str | int]:
        p, op = self.policy, self.force_op
        return [
            self.observer, self.vote.value, self.reason, _ms(self.vote_ttl), self.settings,
            self.quorum, _ms(self.ttl), log_maxlen, channel, _ms(p.slow_start, 0),
            p.initial_admit, p.retry_after_max, _ms(p.rise * p.interval, 0),
            op.op if op else "", op.state.value if op and op.state else "",
            _ms(op.ttl) if op else 0, op.actor if op else "", op.reason if op else "",
            contract, self.name, self.instance,
        ]  # fmt: skip


def _ms(seconds: float, floor: int = 1) -> int:
    return max(floor, int(seconds * 1000))


@dataclass(frozen=True, slots=True)
class VoteOutcome:
    name: str
    verdict: Verdict | None  # the fleet verdict now published, times in unix seconds
    live: int = 0  # live observers, this one included
    other: str = ""  # "observer|settings" of a live observer whose settings differ
    changes: int = 0
    repaired: bool = False
    twin: bool = False  # another live sidecar votes under this observer id
    due: float | None = None  # seconds until the fleet verdict changes by itself (ramp, force)
    error: str | None = None


def vote_outcome(name: str, reply: list[object]) -> VoteOutcome:
    """The script's reply: the fleet verdict and what it found among the votes."""
    due = int(str(reply[17]))
    return VoteOutcome(
        name,
        verdict_from_reply(name, reply),
        live=int(str(reply[12])),
        other=str(reply[13]),
        changes=int(str(reply[14])),
        repaired=int(str(reply[15])) == 1,
        twin=int(str(reply[16])) == 1,
        due=due / 1000 if due >= 0 else None,
    )


def verdict_from_reply(name: str, reply: list[object]) -> Verdict:
    """The script's reply as a Verdict in unix seconds."""
    st, admit, epoch, since, reason, ra, forced, fby, freason, funtil, computed = reply[:11]
    force = None
    if forced in ("open", "closed"):
        until = int(str(funtil)) / 1000
        force = Force(State(str(forced)), until, str(fby), str(freason), int(str(since)) / 1000)
    return Verdict(
        name=name,
        state=State(str(st)),
        admit=int(str(admit)),
        epoch=int(str(epoch)),
        since=int(str(since)) / 1000,
        reason=str(reason),
        retry_after=int(str(ra)),
        computed=State(str(computed)),
        force=force,
    )
