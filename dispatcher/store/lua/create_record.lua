-- Stores a new call or chat, its indexes and its first job as one atomic step, after the
-- claims that guard it: an agent's voice capacity (outbound calls) and the consumer's single
-- active SMS session (chats). Nothing is written when a claim fails.
-- KEYS[1] record hash, KEYS[2] index of all, KEYS[3] index by status, KEYS[4] index by type,
-- KEYS[5] ARQ queue, KEYS[6] agent hash, KEYS[7] SMS session, KEYS[8] do-not-contact set,
-- KEYS[9] the sorted set the call joins (a queued call's waiting set, a scheduled call's
-- scheduled set),
-- KEYS[10] the Idempotency-Key's hash (used when ARGV[11] is not ''),
-- KEYS[11] the campaign's hash, KEYS[12] its calls not yet fired (used when ARGV[15] is not '')
-- ARGV[1] object JSON, ARGV[2] meta JSON, ARGV[3] status, ARGV[4] score (created ms), ARGV[5] id,
-- ARGV[6] agent voice capacity ('' for no claim), ARGV[7] consumer number ('' for no session),
-- ARGV[8] session ttl ms, ARGV[9] score in KEYS[9] ('' joins none), ARGV[10] language or '',
-- ARGV[11] request fingerprint ('' without a key), ARGV[12] key ttl ms, ARGV[13] answer status,
-- ARGV[14] answer body, ARGV[15] campaign id ('' for none), ARGV[16] scheduled ms,
-- ARGV[17] pump job id prefix, ARGV[18] pump job payload, ARGV[19..] jobs (see enqueue_jobs)
-- Returns 1 when stored, 0 agent not available, -1 consumer in a session, -2 consumer opted out,
-- -3 the campaign is cancelled, or {fingerprint, status, body} of the first answer under the
-- same key (nothing written).
if ARGV[11] ~= '' then
  local first = redis.call('HMGET', KEYS[10], 'fp', 'status', 'body')
  if first[1] then return first end
end
if ARGV[15] ~= '' then
  local state = redis.call('HGET', KEYS[11], 'state')
  if state ~= 'running' and state ~= 'paused' then return -3 end
end
if ARGV[6] ~= '' then
  if redis.call('HGET', KEYS[6], 'status') ~= 'available' then return 0 end
  local held = tonumber(redis.call('HGET', KEYS[6], 'voice') or '0')
  if held >= tonumber(ARGV[6]) then return 0 end
end
if ARGV[7] ~= '' then
  if redis.call('SISMEMBER', KEYS[8], ARGV[7]) == 1 then return -2 end
  if not redis.call('SET', KEYS[7], ARGV[5], 'NX', 'PX', ARGV[8]) then return -1 end
end
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[6], 'voice', 1) end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'meta', ARGV[2], 'status', ARGV[3], 'rev', 1)
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'lang', ARGV[10]) end
redis.call('ZADD', KEYS[2], ARGV[4], member(ARGV[5]))
redis.call('ZADD', KEYS[3], ARGV[4], member(ARGV[5]))
redis.call('ZADD', KEYS[4], ARGV[4], member(ARGV[5]))
if ARGV[9] ~= '' then redis.call('ZADD', KEYS[9], ARGV[9], ARGV[5]) end
if ARGV[15] ~= '' then
  -- Fired by the campaign's pump, at its pace, rather than by a job of its own.
  redis.call('HSET', KEYS[1], 'campaign_key', KEYS[11])
  redis.call('ZADD', KEYS[12], ARGV[16], ARGV[5])
  redis.call('HINCRBY', KEYS[11], 'total', 1)
  redis.call('HINCRBY', KEYS[11], 'n:' .. ARGV[3], 1)
  want_pump(KEYS[11], KEYS[5], ARGV[17], ARGV[18], ARGV[16], ARGV[4])
end
enqueue_jobs(KEYS[5], 19)
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[10], 'fp', ARGV[11], 'status', ARGV[13], 'body', ARGV[14])
  redis.call('PEXPIRE', KEYS[10], ARGV[12])
end
return 1
