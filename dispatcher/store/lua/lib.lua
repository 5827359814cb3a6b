-- Shared by every script (prepended when they are registered, after the enum tables that
-- store/scripting.py generates: CALL, CHAT, AGENT, OFFER, OFFER_STEP, CAMPAIGN, CAMPAIGN_ACTION).
-- Every key a script touches arrives in KEYS, named in store/keys.py; all of one tenant's share
-- its hash tag, so each script runs within one Redis Cluster slot.

-- The one argument (store/scripting.py): A holds the arguments, K the key names by field name
-- (`k` in the JSON maps each field to its places in KEYS; an absent key is an absent field).
local A = cjson.decode(ARGV[1])
local function named(tree)
  if type(tree) == 'number' then return KEYS[tree] end
  local out = {}
  for name, value in pairs(tree) do out[name] = named(value) end
  return out
end
local K = named(A.k)

-- The one answer shape: {"ok": value} ({"ok": null} for none) or {"err": code, ...details}.
local function ok(value)
  if value == nil then value = cjson.null end
  return cjson.encode({ok = value})
end
local function err(code, details)
  details = details or {}
  details.err = code
  return cjson.encode(details)
end

-- Queue ARQ jobs (store/scripting.py's Jobs): per job its id, payload, score and ttl ms in
-- `jobs`, its ARQ job key, result key and queue in `keys`. A job id already queued or
-- finished is not queued again.
local function enqueue_jobs(keys, jobs)
  for i, job in ipairs(jobs or {}) do
    local k = keys[i]
    if redis.call('EXISTS', k.job, k.result) == 0 then
      redis.call('SET', k.job, job.payload, 'PX', job.ttl)
      redis.call('ZADD', k.queue, job.score, job.id)
    end
  end
end

-- A token bucket shared by every process: takes `cost` tokens (at most the burst, or a request
-- could never pass) of the bucket hash at `key` (b: rate, burst, now); returns 0 when they were
-- taken, else the ms to wait. The bucket is forgotten once it would be full again (an absent
-- bucket is a full one). A rate too small to refill in ten years (1e-300) waits ten years: inf
-- is no integer for Redis.
local function take_tokens(key, b, cost)
  local rate, burst, now = b.rate, b.burst, b.now
  cost = math.min(cost, burst)
  local decade_ms = 315360000000
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1] or burst)
  local at = tonumber(state[2] or now)
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  local wait = 0
  if tokens >= cost then
    tokens = tokens - cost
  else
    wait = math.min(decade_ms, math.ceil((cost - tokens) * 1000 / rate))
  end
  redis.call('HSET', key, 'tokens', tokens, 'at', now)
  redis.call('PEXPIRE', key, math.min(decade_ms, math.ceil((burst - tokens) * 1000 / rate)) + 1000)
  return wait
end

-- Members of the list indexes: zero-padded ids, so records created in the same millisecond
-- (equal scores, which Redis orders by member) still list in id order.
local function member(id)
  return string.format('%015d', tonumber(id))
end

-- A call of the agent's ends. An agent forced to log out while holding calls
-- (set_agent_statuses.lua) goes offline with the last of them, in the same atomic step.
local function release_voice(agent_key)
  local held = tonumber(redis.call('HGET', agent_key, 'voice') or '0')
  if held > 0 then
    redis.call('HINCRBY', agent_key, 'voice', -1)
    held = held - 1
  end
  if held == 0 and redis.call('HEXISTS', agent_key, 'logout') == 1 then
    redis.call('HSET', agent_key, 'status', AGENT.OFFLINE)
    redis.call('HDEL', agent_key, 'logout')
  end
end

-- A call's history (shown by the dashboard): JSON entries, oldest first, only the last 50 kept,
-- appended in the same atomic step as the change each records.
local HISTORY_LENGTH = 50
local function record_history(key, entry)
  redis.call('RPUSH', key, entry)
  redis.call('LTRIM', key, -HISTORY_LENGTH, -1)
end

-- Several entries of one step, in order, in one push (an offer to each agent of a group, each
-- offer withdrawn by an accept: two commands, not two an entry).
local function record_histories(key, entries)
  if #entries == 0 then return end
  for first = 1, #entries, 1000 do  -- unpack's stack holds some thousands: push in slices
    redis.call('RPUSH', key, unpack(entries, first, math.min(first + 999, #entries)))
  end
  redis.call('LTRIM', key, -HISTORY_LENGTH, -1)
end

local function offer_entry(at_ms, event, agent_id, offer_id)
  return cjson.encode({at = tonumber(at_ms), event = event, agent_id = tonumber(agent_id),
    offer_id = tonumber(offer_id)})
end

-- Voice slots an agent has taken: calls held plus offers still ringing (expired ones are
-- dropped from its offers set here).
local function ringing(offers_key, now_ms)
  redis.call('ZREMRANGEBYSCORE', offers_key, '-inf', now_ms)
  return redis.call('ZCARD', offers_key)
end

local function busy_slots(agent_key, offers_key, now_ms)
  return tonumber(redis.call('HGET', agent_key, 'voice') or '0') + ringing(offers_key, now_ms)
end

-- The compare-and-set of a stored call or chat (store/calls.py's Change): k and a are the
-- change's keys and arguments. Applied only if its revision is still a.rev. Moves the status
-- index, the menu's waiting set and the agent's held calls, leaves the scheduled set when a
-- scheduled call moves on, and appends the change to the call's history. A call of a campaign
-- (k.campaign) moves its campaign's count of each status too. A record that ends joins the
-- tenant's ended set (k.ended), from which it is archived. A call held (a.held_until) joins the
-- tenant's held set (k.held) and its campaign's count of held calls, and leaves both with its
-- next change that holds it no more.
-- Returns the new revision, or nil when the record changed meanwhile (or does not exist).
-- A change announced in the step that writes it (store/calls.py's announce, the same events):
-- a job cancelled between a write and a second round trip would leave it unannounced.
local function announce(a)
  if a.events then
    redis.call('PUBLISH', a.events, string.format('{"type":"call.updated","call":%s}', a.doc))
  end
  if a.agent_events then
    if a.status == CALL.ASSIGNED then
      local assigned = string.format('{"event":"assigned","data":{"call_id":%d}}', a.id)
      redis.call('PUBLISH', a.agent_events, assigned)
    end
    local updated = string.format('{"event":"call_updated","data":%s}', a.doc)
    redis.call('PUBLISH', a.agent_events, updated)
  end
end

local function cas_transition(k, a)
  local stored = redis.call('HMGET', k.record, 'rev', 'status')
  local rev = tonumber(stored[1] or '0')
  if rev == 0 or rev ~= a.rev then return nil end
  if k.scheduled and stored[2] == CALL.SCHEDULED and a.status ~= CALL.SCHEDULED then
    redis.call('ZREM', k.scheduled, a.id)
  end
  if k.campaign and k.from ~= k.to then
    redis.call('HINCRBY', k.campaign, 'n:' .. stored[2], -1)
    redis.call('HINCRBY', k.campaign, 'n:' .. a.status, 1)
  end
  redis.call('HSET', k.record, 'doc', a.doc, 'status', a.status, 'rev', rev + 1)
  if a.meta then redis.call('HSET', k.record, 'meta', a.meta) end
  if k.from ~= k.to then
    redis.call('ZREM', k.from, member(a.id))
    redis.call('ZADD', k.to, a.score, member(a.id))
  end
  if a.waiting == 'add' then redis.call('ZADD', k.waiting, a.waiting_score, a.id) end
  if a.waiting == 'rem' then redis.call('ZREM', k.waiting, a.id) end
  if a.release then release_voice(k.agent) end
  if a.entry then record_history(k.history, a.entry) end
  if k.ended then redis.call('ZADD', k.ended, a.ended_score, member(a.id)) end
  if k.held then
    if a.held_until then
      if redis.call('ZADD', k.held, a.held_until, a.id) == 1 and k.campaign then
        redis.call('HINCRBY', k.campaign, 'held', 1)
      end
      if k.scheduled then redis.call('ZADD', k.scheduled, 'XX', a.held_until, a.id) end
    elseif redis.call('ZREM', k.held, a.id) == 1 and k.campaign then
      redis.call('HINCRBY', k.campaign, 'held', -1)
    end
  end
  announce(a)
  return rev + 1
end

-- Whether the campaign's pumps were counted on since the caller read `pump.seq` (its next pump
-- job's key, k.job, is named after the count): the caller reads it again and retries.
local function pump_moved(campaign_key, pump)
  return tonumber(redis.call('HGET', campaign_key, 'pump_seq') or '0') ~= pump.seq
end

-- A campaign's pump job (workers/campaigns.py) is wanted at `wake` ms: it is queued unless one
-- is already due no later than that (`pump_at`), so that one pump runs per campaign however
-- many batches, resumes and pumps ask. A pump overdue by more than 10 s is taken for lost and
-- replaced. Job ids count the campaign's pumps (pump.seq + 1 is the next, k: its keys).
local function want_pump(campaign_key, k, pump, wake, now)
  local at = tonumber(redis.call('HGET', campaign_key, 'pump_at') or '0')
  if at > 0 and at <= wake and at > now - 10000 then return end
  redis.call('HSET', campaign_key, 'pump_at', wake, 'pump_seq', pump.seq + 1)
  -- PX takes integers only, and `wake` has a fraction whenever the pace's interval has one
  -- (1000 ms / 3 calls a second): the SET would fail, the pump job with it, and the campaign
  -- stall behind the `pump_at` just written.
  redis.call('SET', k.job, pump.payload, 'PX', math.ceil(math.max(wake - now, 0)) + 86400000)
  redis.call('ZADD', k.queue, wake, pump.id)
end

-- Whether `number` is on the tenant's company DNC list at `now` ms (store/keys.py's dnc and
-- dnc_expiring): an entry counts until its expiry, exactly, whether or not it was swept.
local function on_dnc(dnc_key, expiring_key, number, now)
  if not redis.call('ZSCORE', dnc_key, number) then return false end
  local expires = redis.call('ZSCORE', expiring_key, number)
  return not expires or tonumber(expires) > now
end

-- Whether a call may start (store/scripts.py's Guard: k its keys, g its arguments): an err
-- answer when its number is on the company DNC list (`dnc`), or has had `limit` attempts in
-- the last `span` ms (`contact_limit`, with `retry_at`: the ms it may be tried again); else nil.
-- The attempts' expired members are dropped on the way.
local function guard_refusal(k, g)
  if k.dnc and on_dnc(k.dnc, k.dnc_expiring, g.number, g.now) then return err('dnc') end
  if k.attempts then
    redis.call('ZREMRANGEBYSCORE', k.attempts, '-inf', g.now - g.span)
    local made = redis.call('ZCARD', k.attempts)
    if made >= g.limit and not redis.call('ZSCORE', k.attempts, g.id) then
      -- The attempt whose leaving the span brings the count under the limit (a limit lowered
      -- since may leave more than `limit` in it).
      local leaving = redis.call('ZRANGE', k.attempts, made - g.limit, made - g.limit, 'WITHSCORES')
      return err('contact_limit', {retry_at = tonumber(leaving[2]) + g.span, limit = g.limit})
    end
  end
  return nil
end

-- The guarded call counts as an attempt on its number (once, whatever retries).
local function guard_count(k, g)
  if k.attempts then
    redis.call('ZADD', k.attempts, g.now, g.id)
    redis.call('PEXPIRE', k.attempts, g.span)
  end
end

-- Removes up to `most` entries of the DNC list expired at `now` ms (on_dnc no longer counts
-- them) from both its sets; returns how many it removed.
local function purge_dnc(dnc_key, expiring_key, now, most)
  local expired = redis.call('ZRANGEBYSCORE', expiring_key, '-inf', now, 'LIMIT', 0, most)
  for _, number in ipairs(expired) do
    redis.call('ZREM', dnc_key, number)
    redis.call('ZREM', expiring_key, number)
  end
  return #expired
end
