-- Compare-and-set of a stored call: applied only if its revision is still ARGV[1], so a stale or
-- repeated job changes nothing. Moves the status index, the menu's waiting set and the agent's
-- held calls, and queues follow-up jobs, all in the same atomic step.
-- KEYS[1] call hash, KEYS[2] old status index, KEYS[3] new status index, KEYS[4] waiting set,
-- KEYS[5] agent hash, KEYS[6] ARQ queue, KEYS[7] scheduled set (left when a scheduled call moves)
-- ARGV[1] expected rev, ARGV[2] doc, ARGV[3] status, ARGV[4] meta ('' keeps it), ARGV[5] call id,
-- ARGV[6] created ms (index score), ARGV[7] waiting op ('add', 'rem' or ''), ARGV[8] waiting score,
-- ARGV[9] '1' to release one voice slot of the agent, ARGV[10..] jobs (see enqueue_jobs)
-- Returns the new revision, or 0 when the call changed meanwhile (or does not exist).
local stored = redis.call('HMGET', KEYS[1], 'rev', 'status')
local rev = tonumber(stored[1] or '0')
if rev == 0 or rev ~= tonumber(ARGV[1]) then return 0 end
if stored[2] == 'scheduled' and ARGV[3] ~= 'scheduled' then redis.call('ZREM', KEYS[7], ARGV[5]) end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'status', ARGV[3], 'rev', rev + 1)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'meta', ARGV[4]) end
if KEYS[2] ~= KEYS[3] then
  redis.call('ZREM', KEYS[2], member(ARGV[5]))
  redis.call('ZADD', KEYS[3], ARGV[6], member(ARGV[5]))
end
if ARGV[7] == 'add' then redis.call('ZADD', KEYS[4], ARGV[8], ARGV[5]) end
if ARGV[7] == 'rem' then redis.call('ZREM', KEYS[4], ARGV[5]) end
if ARGV[9] == '1' then release_voice(KEYS[5]) end
enqueue_jobs(KEYS[6], 10)
return rev + 1
