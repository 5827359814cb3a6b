-- Declines an open offer; the agent stays on the call's offer list, so is not offered it again.
-- KEYS[1] offer hash, KEYS[2] agent's open offers, KEYS[3] the call's history
-- ARGV[1] offer id, ARGV[2] now ms
local offer = redis.call('HMGET', KEYS[1], 'state', 'agent_id')
if offer[1] ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'declined')
redis.call('ZREM', KEYS[2], ARGV[1])
record_history(KEYS[3], offer_entry(ARGV[2], 'declined', offer[2], ARGV[1]))
return 1
