-- Stores a new call or chat, its indexes and its first job as one atomic step, after the
-- claims that guard it: an agent's voice capacity (outbound calls) and the consumer's single
-- active SMS session (chats). Nothing is written when a claim fails.
-- KEYS[1] record hash, KEYS[2] index of all, KEYS[3] index by status, KEYS[4] index by type,
-- KEYS[5] ARQ job, KEYS[6] ARQ job result, KEYS[7] ARQ queue,
-- KEYS[8] agent hash, KEYS[9] SMS session, KEYS[10] do-not-contact set
-- ARGV[1] object JSON, ARGV[2] meta JSON, ARGV[3] status, ARGV[4] score (created ms), ARGV[5] id,
-- ARGV[6] job payload ('' for none), ARGV[7] job score, ARGV[8] job ttl ms, ARGV[9] job id,
-- ARGV[10] agent voice capacity ('' for no claim), ARGV[11] consumer number ('' for no session),
-- ARGV[12] session ttl ms
-- Returns 1 when stored, 0 agent not available, -1 consumer in a session, -2 consumer opted out.
if ARGV[10] ~= '' then
  if redis.call('HGET', KEYS[8], 'status') ~= 'available' then return 0 end
  local held = tonumber(redis.call('HGET', KEYS[8], 'voice') or '0')
  if held >= tonumber(ARGV[10]) then return 0 end
end
if ARGV[11] ~= '' then
  if redis.call('SISMEMBER', KEYS[10], ARGV[11]) == 1 then return -2 end
  if not redis.call('SET', KEYS[9], ARGV[5], 'NX', 'PX', ARGV[12]) then return -1 end
end
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[8], 'voice', 1) end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'meta', ARGV[2], 'status', ARGV[3], 'rev', 1)
redis.call('ZADD', KEYS[2], ARGV[4], member(ARGV[5]))
redis.call('ZADD', KEYS[3], ARGV[4], member(ARGV[5]))
redis.call('ZADD', KEYS[4], ARGV[4], member(ARGV[5]))
if ARGV[6] ~= '' and redis.call('EXISTS', KEYS[5], KEYS[6]) == 0 then
  redis.call('SET', KEYS[5], ARGV[6], 'PX', ARGV[8])
  redis.call('ZADD', KEYS[7], ARGV[7], ARGV[9])
end
return 1
