-- Shared by the scripts below (prepended when they are registered).
-- Keys built here all live on one Redis (primary): this product does not run on Redis Cluster.

-- Webhook deliveries go to an ARQ queue of their own (jobs.WEBHOOK_QUEUE_NAME), which the
-- worker's webhook lane drains: a slow receiver then holds no routing, firing or dialing.
local WEBHOOK_JOB_PREFIX, WEBHOOK_QUEUE = 'deliver_webhook:', 'arq:queue:webhooks'

-- Queue ARQ jobs read from ARGV starting at `at`: count, then per job: id, payload, score, ttl ms.
-- A job id already queued or finished is not queued again. The key prefixes are ARQ's own
-- (arq.constants job_key_prefix, result_key_prefix).
local function enqueue_jobs(queue, at)
  local count = tonumber(ARGV[at])
  for i = 0, count - 1 do
    local base = at + 1 + i * 4
    local id = ARGV[base]
    local job_key, result_key = 'arq:job:' .. id, 'arq:result:' .. id
    if redis.call('EXISTS', job_key, result_key) == 0 then
      redis.call('SET', job_key, ARGV[base + 1], 'PX', ARGV[base + 3])
      local into = queue
      if string.sub(id, 1, #WEBHOOK_JOB_PREFIX) == WEBHOOK_JOB_PREFIX then into = WEBHOOK_QUEUE end
      redis.call('ZADD', into, ARGV[base + 2], id)
    end
  end
  return at + 1 + count * 4
end

-- A token bucket shared by every process: takes `cost` tokens (at most the burst, or a request
-- could never pass) of the bucket hash at `key`; returns 0 when they were taken, else the ms to
-- wait. The bucket is forgotten once it would be full again (an absent bucket is a full one).
-- A rate too small to refill in ten years (1e-300) waits ten years: inf is no integer for Redis.
local function take_tokens(key, rate, burst, now, cost)
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

local function release_voice(agent_key)
  if tonumber(redis.call('HGET', agent_key, 'voice') or '0') > 0 then
    redis.call('HINCRBY', agent_key, 'voice', -1)
  end
end

-- A call's history (shown by the dashboard): JSON entries, oldest first, only the last 50 kept,
-- appended in the same atomic step as the change each records.
local HISTORY_LENGTH = 50
local function record_history(key, entry)
  redis.call('RPUSH', key, entry)
  redis.call('LTRIM', key, -HISTORY_LENGTH, -1)
end

local function offer_entry(at_ms, event, agent_id, offer_id)
  return cjson.encode({at = tonumber(at_ms), event = event, agent_id = tonumber(agent_id),
    offer_id = tonumber(offer_id)})
end

-- Voice slots an agent has taken: calls held plus offers still ringing (expired ones are
-- dropped from its offers set here).
local function busy_slots(agent_key, now_ms)
  local offers = agent_key .. ':offers'
  redis.call('ZREMRANGEBYSCORE', offers, '-inf', now_ms)
  return tonumber(redis.call('HGET', agent_key, 'voice') or '0') + redis.call('ZCARD', offers)
end

-- The compare-and-set of a stored call (transition.lua, and fire_campaign_call.lua in front of
-- its campaign's gate), applied only if its revision is still ARGV[1]. Moves the status index,
-- the menu's waiting set and the agent's held calls, leaves the scheduled set when a scheduled
-- call moves on, appends the change to the call's history and queues follow-up jobs. A call of a
-- campaign (its hash names the campaign's, `campaign_key`) moves its campaign's count of each
-- status too.
-- KEYS[1] call hash, KEYS[2] old status index, KEYS[3] new status index, KEYS[4] waiting set,
-- KEYS[5] agent hash, KEYS[6] ARQ queue, KEYS[7] scheduled set, KEYS[8] the call's history
-- ARGV[1] expected rev, ARGV[2] doc, ARGV[3] status, ARGV[4] meta ('' keeps it), ARGV[5] call id,
-- ARGV[6] created ms (index score), ARGV[7] waiting op ('add', 'rem' or ''), ARGV[8] waiting score,
-- ARGV[9] '1' to release one voice slot of the agent, ARGV[10..] jobs (see enqueue_jobs), then
-- the history entry of the change ('' or absent for none).
-- Returns the new revision (0 when the call changed meanwhile, or does not exist) and the index
-- of the first ARGV after the history entry.
local function cas_transition()
  local after_jobs = 11 + tonumber(ARGV[10]) * 4
  local stored = redis.call('HMGET', KEYS[1], 'rev', 'status', 'campaign_key')
  local rev = tonumber(stored[1] or '0')
  if rev == 0 or rev ~= tonumber(ARGV[1]) then return 0, after_jobs + 1 end
  if stored[2] == 'scheduled' and ARGV[3] ~= 'scheduled' then redis.call('ZREM', KEYS[7], ARGV[5]) end
  if stored[3] and KEYS[2] ~= KEYS[3] then
    redis.call('HINCRBY', stored[3], 'n:' .. stored[2], -1)
    redis.call('HINCRBY', stored[3], 'n:' .. ARGV[3], 1)
  end
  redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'status', ARGV[3], 'rev', rev + 1)
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'meta', ARGV[4]) end
  if KEYS[2] ~= KEYS[3] then
    redis.call('ZREM', KEYS[2], member(ARGV[5]))
    redis.call('ZADD', KEYS[3], ARGV[6], member(ARGV[5]))
  end
  if ARGV[7] == 'add' then redis.call('ZADD', KEYS[4], ARGV[8], ARGV[5]) end
  if ARGV[7] == 'rem' then redis.call('ZREM', KEYS[4], ARGV[5]) end
  if ARGV[9] == '1' then release_voice(KEYS[5]) end
  enqueue_jobs(KEYS[6], 10)
  local entry = ARGV[after_jobs]
  if KEYS[8] and entry and entry ~= '' then record_history(KEYS[8], entry) end
  return rev + 1, after_jobs + 1
end

-- A campaign's pump job (workers/campaigns.py) is wanted at `wake` ms: it is queued unless one
-- is already due no later than that (`pump_at`), so that one pump runs per campaign however
-- many batches, resumes and pumps ask. A pump overdue by more than 10 s is taken for lost and
-- replaced. Job ids are `<prefix><n>`, n counting the campaign's pumps.
local function want_pump(campaign_key, queue, prefix, payload, wake, now)
  wake, now = tonumber(wake), tonumber(now)
  local at = tonumber(redis.call('HGET', campaign_key, 'pump_at') or '0')
  if at > 0 and at <= wake and at > now - 10000 then return end
  redis.call('HSET', campaign_key, 'pump_at', wake)
  local id = prefix .. redis.call('HINCRBY', campaign_key, 'pump_seq', 1)
  -- PX takes integers only, and `wake` has a fraction whenever the pace's interval has one
  -- (1000 ms / 3 calls a second): the SET would fail, the pump job with it, and the campaign
  -- stall behind the `pump_at` just written.
  redis.call('SET', 'arq:job:' .. id, payload, 'PX', math.ceil(math.max(wake - now, 0)) + 86400000)
  redis.call('ZADD', queue, wake, id)
end
