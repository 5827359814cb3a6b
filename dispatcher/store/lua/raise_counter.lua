-- Raises K.counter to at least A.at_least (never lowers it).
local current = tonumber(redis.call('GET', K.counter) or '0')
if current < A.at_least then redis.call('SET', K.counter, A.at_least) end
return ok()
