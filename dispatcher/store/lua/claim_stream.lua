-- A lease for one more event stream in each of its scopes (tenant, session, agent), or none.
-- KEYS: the scopes' sorted sets (member: stream id, score: lease expiry ms)
-- ARGV[1] now ms, ARGV[2] lease expiry ms, ARGV[3] stream id, ARGV[4..] each scope's cap
-- Returns 0 when claimed, else the (1-based) index of the first scope that is full. Leases
-- past their expiry (a process that died with its streams) are dropped before counting.
local now, expiry, id = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, id)
  redis.call('PEXPIREAT', key, expiry)
end
return 0
