-- A lease for one more event stream in each of its scopes (tenant, session, agent), or none.
-- K.scopes the scopes' sorted sets (member: stream id, score: lease expiry ms), A.caps each
-- scope's cap, A.now, A.expiry (ms), A.stream its id.
-- Answers err `full` with the (1-based) `scope` of the first that is full. Leases past their
-- expiry (a process that died with its streams) are dropped before counting.
for i, key in ipairs(K.scopes) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', A.now)
  if redis.call('ZCARD', key) >= A.caps[i] then return err('full', {scope = i}) end
end
for _, key in ipairs(K.scopes) do
  redis.call('ZADD', key, A.expiry, A.stream)
  redis.call('PEXPIREAT', key, A.expiry)
end
return ok()
