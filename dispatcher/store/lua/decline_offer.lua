-- Declines an open offer; the agent stays on the call's offer list, so is not offered it again.
-- KEYS[1] offer hash, KEYS[2] agent's open offers; ARGV[1] offer id
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'declined')
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
