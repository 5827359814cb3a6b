-- Offers a queued call to agents who are available, have a free voice slot and were never
-- offered this call before (declined or expired offers are not repeated).
-- KEYS[1] call hash, KEYS[2] the call's offers (hash agent id -> offer id), KEYS[3] offer counter
-- ARGV[1] tenant key prefix, ARGV[2] call id, ARGV[3] now ms, ARGV[4] expires ms,
-- then per agent: agent id, voice capacity, group name
-- Returns a flat list: agent id, offer id, ... for the offers made.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {} end
local prefix, made = ARGV[1], {}
for i = 5, #ARGV, 3 do
  local agent_id, capacity, group = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local agent_key = prefix .. 'agent:' .. agent_id
  if redis.call('HEXISTS', KEYS[2], agent_id) == 0
      and redis.call('HGET', agent_key, 'status') == 'available'
      and tonumber(redis.call('HGET', agent_key, 'voice') or '0') < capacity then
    local offer_id = redis.call('INCR', KEYS[3])
    redis.call('HSET', prefix .. 'offer:' .. offer_id, 'call_id', ARGV[2], 'agent_id', agent_id,
      'group', group, 'offered_at', ARGV[3], 'expires_at', ARGV[4], 'state', 'open')
    redis.call('PEXPIREAT', prefix .. 'offer:' .. offer_id, tonumber(ARGV[4]) + 86400000)
    redis.call('HSET', KEYS[2], agent_id, offer_id)
    redis.call('ZADD', prefix .. 'agent:' .. agent_id .. ':offers', ARGV[4], offer_id)
    table.insert(made, agent_id)
    table.insert(made, offer_id)
  end
end
return made
