-- Sets customer flags on a call that exists; never creates a half record.
-- KEYS[1] call hash; ARGV: field, value, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
