-- Ends a consumer's SMS session only if it is still the session of this chat.
-- KEYS[1] session key; ARGV[1] chat id. Returns 1 when deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
