-- Offers a queued call to agents who are available, have a voice slot free of calls and of
-- other open offers (an agent rings for one call per free slot, as a phone would), and were
-- never offered this call before (declined or expired offers are not repeated).
-- KEYS[1] call hash, KEYS[2] the call's offers (hash agent id -> offer id), KEYS[3] offer counter,
-- KEYS[4] the call's history
-- ARGV[1] tenant key prefix, ARGV[2] call id, ARGV[3] now ms, ARGV[4] expires ms,
-- then per agent: agent id, voice capacity, group name
-- Offers of the call that rang out unanswered are marked expired first: their agents are free
-- to ring for other calls (the caller wakes them), though never again for this one.
-- Returns {made, rang_out}: made is a flat list agent id, offer id, ... of the offers made;
-- rang_out the ids of the agents whose offers rang out.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {{}, {}} end
local prefix, made, rang_out = ARGV[1], {}, {}
local offered = redis.call('HGETALL', KEYS[2])
for i = 1, #offered, 2 do
  local offer_key = prefix .. 'offer:' .. offered[i + 1]
  local offer = redis.call('HMGET', offer_key, 'state', 'expires_at')
  if offer[1] == 'open' and tonumber(offer[2]) <= tonumber(ARGV[3]) then
    redis.call('HSET', offer_key, 'state', 'expired')
    table.insert(rang_out, offered[i])
    record_history(KEYS[4], offer_entry(ARGV[3], 'expired', offered[i], offered[i + 1]))
  end
end
for i = 5, #ARGV, 3 do
  local agent_id, capacity, group = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local agent_key = prefix .. 'agent:' .. agent_id
  if redis.call('HEXISTS', KEYS[2], agent_id) == 0
      and redis.call('HGET', agent_key, 'status') == 'available'
      and busy_slots(agent_key, ARGV[3]) < capacity then
    local offer_id = redis.call('INCR', KEYS[3])
    redis.call('HSET', prefix .. 'offer:' .. offer_id, 'call_id', ARGV[2], 'agent_id', agent_id,
      'group', group, 'offered_at', ARGV[3], 'expires_at', ARGV[4], 'state', 'open')
    redis.call('PEXPIREAT', prefix .. 'offer:' .. offer_id, tonumber(ARGV[4]) + 86400000)
    redis.call('HSET', KEYS[2], agent_id, offer_id)
    redis.call('ZADD', prefix .. 'agent:' .. agent_id .. ':offers', ARGV[4], offer_id)
    table.insert(made, agent_id)
    table.insert(made, offer_id)
    record_history(KEYS[4], offer_entry(ARGV[3], 'offered', agent_id, offer_id))
  end
end
return {made, rang_out}
