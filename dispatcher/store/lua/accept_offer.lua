-- The first accept wins: the offer must be open and unexpired, the call still queued at the
-- revision the new document was built from, and the agent available with a free voice slot.
-- Then the call is assigned, the agent holds one more call, every other open offer of the call
-- is withdrawn and the connect job is queued, all at once.
-- KEYS[1] offer hash, KEYS[2] call hash, KEYS[3] agent hash, KEYS[4] call's offers hash,
-- KEYS[5] queued index, KEYS[6] assigned index, KEYS[7] waiting set, KEYS[8] ARQ queue,
-- KEYS[9] the call's history
-- ARGV[1] tenant key prefix, ARGV[2] now ms, ARGV[3] expected rev, ARGV[4] doc, ARGV[5] capacity,
-- ARGV[6] created ms, ARGV[7] offer id, ARGV[8..] jobs (see enqueue_jobs)
-- Returns {'ok', agent, offer, ...withdrawn} | {'gone'} | {'busy'} | {'stale'}
local offer = redis.call('HMGET', KEYS[1], 'state', 'expires_at', 'call_id', 'agent_id')
if offer[1] ~= 'open' or tonumber(offer[2]) <= tonumber(ARGV[2]) then return {'gone'} end
local call = redis.call('HMGET', KEYS[2], 'status', 'rev')
if call[1] ~= 'queued' then return {'gone'} end
if tonumber(call[2]) ~= tonumber(ARGV[3]) then return {'stale'} end
if redis.call('HGET', KEYS[3], 'status') ~= 'available'
    or tonumber(redis.call('HGET', KEYS[3], 'voice') or '0') >= tonumber(ARGV[5]) then
  return {'busy'}
end
local call_id = offer[3]
redis.call('HSET', KEYS[1], 'state', 'accepted')
redis.call('HINCRBY', KEYS[3], 'voice', 1)
redis.call('HSET', KEYS[2], 'doc', ARGV[4], 'status', 'assigned', 'rev', tonumber(call[2]) + 1)
local campaign = redis.call('HGET', KEYS[2], 'campaign_key')
if campaign then
  redis.call('HINCRBY', campaign, 'n:queued', -1)
  redis.call('HINCRBY', campaign, 'n:assigned', 1)
end
redis.call('ZREM', KEYS[5], member(call_id))
redis.call('ZADD', KEYS[6], ARGV[6], member(call_id))
redis.call('ZREM', KEYS[7], call_id)
redis.call('ZREM', ARGV[1] .. 'agent:' .. offer[4] .. ':offers', ARGV[7])
record_history(KEYS[9], offer_entry(ARGV[2], 'accepted', offer[4], ARGV[7]))
local result = {'ok'}
local others = redis.call('HGETALL', KEYS[4])
for i = 1, #others, 2 do
  local agent_id, offer_id = others[i], others[i + 1]
  local other_key = ARGV[1] .. 'offer:' .. offer_id
  if offer_id ~= ARGV[7] and redis.call('HGET', other_key, 'state') == 'open' then
    redis.call('HSET', other_key, 'state', 'withdrawn')
    redis.call('ZREM', ARGV[1] .. 'agent:' .. agent_id .. ':offers', offer_id)
    table.insert(result, agent_id)
    table.insert(result, offer_id)
    record_history(KEYS[9], offer_entry(ARGV[2], 'withdrawn', agent_id, offer_id))
  end
end
enqueue_jobs(KEYS[8], 8)
return result
