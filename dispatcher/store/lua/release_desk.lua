-- Deletes an agent's desk key only while it still names this desk: a stream that lost the desk
-- must not clear its winner's.
-- KEYS[1] desk key; ARGV[1] desk id
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
