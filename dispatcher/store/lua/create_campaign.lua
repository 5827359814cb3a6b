-- Creates a campaign under a name not yet taken by another of the tenant's campaigns.
-- KEYS[1] hash of names -> ids, KEYS[2] campaign counter, KEYS[3] index of all (by creation ms)
-- ARGV[1] tenant key prefix, ARGV[2] name, ARGV[3] menu id, ARGV[4] calls per second,
-- ARGV[5] max calls waiting ('' for no cap), ARGV[6] now ms
-- Returns {1, id} when created, or {0, id} of the campaign that has the name already.
local taken = redis.call('HGET', KEYS[1], ARGV[2])
if taken then return {0, tonumber(taken)} end
local id = redis.call('INCR', KEYS[2])
redis.call('HSET', ARGV[1] .. 'campaign:' .. id,
  'id', id, 'name', ARGV[2], 'menu_id', ARGV[3], 'rate', ARGV[4], 'max_waiting', ARGV[5],
  'state', 'running', 'created_at', ARGV[6], 'total', 0, 'fired', 0, 'late_sum', 0, 'late_max', 0)
redis.call('HSET', KEYS[1], ARGV[2], id)
redis.call('ZADD', KEYS[3], ARGV[6], id)
return {1, id}
