-- Pause, resume or cancel a campaign. The new state is written before the caller answers, and
-- every firing checks it in its own atomic step (fire_campaign_call.lua): once a cancel has
-- answered, no call of the campaign fires.
-- K.campaign, K.pump (its next pump job's keys), K.jobs (the sweep, queued on cancel);
-- A.action, A.now, A.pump.
-- Answers ok, or err: `missing` (no such campaign), `cancelled` (pause or resume once
-- cancelled), `stale` (the pumps were counted on since A.pump.seq was read: read it again).
local state = redis.call('HGET', K.campaign, 'state')
if not state then return err('missing') end
if A.action == CAMPAIGN_ACTION.CANCEL then
  if state ~= CAMPAIGN.CANCELLED then
    redis.call('HSET', K.campaign, 'state', CAMPAIGN.CANCELLED, 'cancelled_at', A.now)
    redis.call('HDEL', K.campaign, 'paused_at')
  end
  -- Queued again by a repeated cancel: the sweep is idempotent, and a no-op once done.
  enqueue_jobs(K.jobs, A.jobs)
  return ok()
end
if state == CAMPAIGN.CANCELLED then return err(CAMPAIGN.CANCELLED) end
if A.action == CAMPAIGN_ACTION.PAUSE then
  if state == CAMPAIGN.RUNNING then
    redis.call('HSET', K.campaign, 'state', CAMPAIGN.PAUSED, 'paused_at', A.now)
  end
  return ok()
end
if pump_moved(K.campaign, A.pump) then return err('stale') end
if state == CAMPAIGN.PAUSED then
  redis.call('HSET', K.campaign, 'state', CAMPAIGN.RUNNING)
  redis.call('HDEL', K.campaign, 'paused_at')
end
want_pump(K.campaign, K.pump, A.pump, A.now, A.now)
return ok()
