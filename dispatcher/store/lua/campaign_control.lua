-- Pause, resume or cancel a campaign. The new state is written before the caller answers, and
-- every firing checks it in its own atomic step (fire_campaign_call.lua): once a cancel has
-- answered, no call of the campaign fires.
-- KEYS[1] campaign hash, KEYS[2] ARQ queue
-- ARGV[1] 'pause' | 'resume' | 'cancel', ARGV[2] now ms, ARGV[3] pump job id prefix,
-- ARGV[4] pump job payload, ARGV[5..] the sweep job (see enqueue_jobs), queued on cancel
-- Returns 'ok', 'missing' (no such campaign) or 'cancelled' (pause or resume once cancelled).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'missing' end
if ARGV[1] == 'cancel' then
  if state ~= 'cancelled' then
    redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', ARGV[2])
    redis.call('HDEL', KEYS[1], 'paused_at')
  end
  -- Queued again by a repeated cancel: the sweep is idempotent, and a no-op once done.
  enqueue_jobs(KEYS[2], 5)
  return 'ok'
end
if state == 'cancelled' then return 'cancelled' end
if ARGV[1] == 'pause' then
  if state == 'running' then
    redis.call('HSET', KEYS[1], 'state', 'paused', 'paused_at', ARGV[2])
  end
  return 'ok'
end
if state == 'paused' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HDEL', KEYS[1], 'paused_at')
end
want_pump(KEYS[1], KEYS[2], ARGV[3], ARGV[4], ARGV[2], ARGV[2])
return 'ok'
