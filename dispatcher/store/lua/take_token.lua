-- Token bucket shared by every process: returns 0 when a token was taken, else the ms to wait.
-- KEYS[1] bucket hash; ARGV[1] rate per second, ARGV[2] burst, ARGV[3] now ms
-- The bucket is forgotten once it would be full again (an absent bucket is a full one).
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1] or burst)
local at = tonumber(state[2] or now)
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait
