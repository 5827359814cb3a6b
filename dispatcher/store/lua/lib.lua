-- Shared by the scripts below (prepended when they are registered).
-- Keys built here all live on one Redis (primary): this product does not run on Redis Cluster.

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
      redis.call('ZADD', queue, ARGV[base + 2], id)
    end
  end
  return at + 1 + count * 4
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
