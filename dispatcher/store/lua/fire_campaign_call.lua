-- Fires a call of a campaign (scheduled -> queued) only while its campaign runs, and only at its
-- pace, in the same atomic step as the compare-and-set itself (cas_transition in lib.lua): a call
-- checked before a cancel and written after it cannot exist. The pump already queues fire jobs
-- at paced times; the pace is checked again here (GCRA on the firing times, `fire_tat`) because
-- workers that fall behind would run several due jobs at once. A paused campaign's call goes
-- back among the calls not yet fired, at its scheduled time; a cancelled one's is left to be
-- failed; one too early waits the ms this returns.
-- KEYS[1..8] and ARGV[1..] as cas_transition, then KEYS[9] campaign hash, KEYS[10] its calls not
-- yet fired, KEYS[11] its calls handed to a fire job; after the jobs and the history entry: the
-- call's scheduled ms, its queued ms (the lateness its object shows), the burst in seconds of
-- rate.
-- Returns {'ok', new revision}, {'stale'} when the call changed meanwhile, {'paused'},
-- {'cancelled'} or {'early', ms to wait}.
local after_jobs = 12 + tonumber(ARGV[10]) * 4  -- and after the history entry
local scheduled, queued = tonumber(ARGV[after_jobs]), tonumber(ARGV[after_jobs + 1])
local campaign = redis.call('HMGET', KEYS[9], 'state', 'rate', 'fire_tat')
if campaign[1] == 'cancelled' then return {'cancelled'} end
if campaign[1] ~= 'running' then
  if redis.call('ZREM', KEYS[11], ARGV[5]) == 1 then redis.call('ZADD', KEYS[10], scheduled, ARGV[5]) end
  return {'paused'}
end
local rate = tonumber(campaign[2])
local interval = 1000 / rate
local tolerance = (math.max(1, rate * tonumber(ARGV[after_jobs + 2])) - 1) * interval
local tat = tonumber(campaign[3] or '0')
if queued < tat - tolerance then return {'early', math.ceil(tat - tolerance - queued)} end
local rev = cas_transition()
if rev == 0 then return {'stale'} end
redis.call('HSET', KEYS[9], 'fire_tat', math.max(tat, queued) + interval)
redis.call('ZREM', KEYS[11], ARGV[5])
redis.call('ZREM', KEYS[10], ARGV[5])
local late = math.max(0, queued - scheduled)
redis.call('HINCRBY', KEYS[9], 'fired', 1)
redis.call('HINCRBY', KEYS[9], 'late_sum', late)
if late > tonumber(redis.call('HGET', KEYS[9], 'late_max') or '0') then
  redis.call('HSET', KEYS[9], 'late_max', late)
end
return {'ok', rev}
