-- Token bucket shared by every process: returns 0 when the tokens were taken, else the ms to wait.
-- KEYS[1] bucket hash; ARGV[1] rate per second, ARGV[2] burst, ARGV[3] now ms, ARGV[4] tokens to
-- take (1 when absent; at most the burst, or a request could never pass)
-- The bucket is forgotten once it would be full again (an absent bucket is a full one).
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost = math.min(tonumber(ARGV[4] or '1'), burst)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1] or burst)
local at = tonumber(state[2] or now)
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
-- A rate too small to refill in ten years (1e-300) waits ten years: inf is no integer for Redis.
local decade_ms = 315360000000
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.min(decade_ms, math.ceil((cost - tokens) * 1000 / rate)) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.min(decade_ms, math.ceil((burst - tokens) * 1000 / rate)) + 1000)
return wait
