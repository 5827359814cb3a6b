-- Fires a call of a campaign (scheduled -> queued) only while its campaign runs, and only at its
-- pace, in the same atomic step as the compare-and-set itself (cas_transition in lib.lua): a call
-- checked before a cancel and written after it cannot exist. The pump already queues fire jobs
-- at paced times; the pace is checked again here (GCRA on the firing times, `fire_tat`) because
-- workers that fall behind would run several due jobs at once. A paused campaign's call goes
-- back among the calls not yet fired, at its scheduled time; a cancelled one's is left to be
-- failed; one too early waits the ms this returns.
-- K.change and A.change as cas_transition's (K.change.campaign: the campaign's hash), K.jobs,
-- K.due (its calls not yet fired), K.released (its calls handed to a fire job); A.scheduled and
-- A.queued (the call's scheduled ms and queued ms: the lateness its object shows), A.burst_s;
-- K.guard/A.guard as transition.lua's (the DNC list and contact limit, checked after the pace).
-- Answers the new revision, or err: `stale` (the call changed meanwhile), the campaign's state
-- when it is paused or cancelled, `early` (with `wait_ms`), `dnc`, `contact_limit`.
local campaign_key, id = K.change.campaign, A.change.id
local campaign = redis.call('HMGET', campaign_key, 'state', 'rate', 'fire_tat')
if campaign[1] == CAMPAIGN.CANCELLED then return err(CAMPAIGN.CANCELLED) end
if campaign[1] ~= CAMPAIGN.RUNNING then
  if redis.call('ZREM', K.released, id) == 1 then redis.call('ZADD', K.due, A.scheduled, id) end
  return err(CAMPAIGN.PAUSED)
end
local rate = tonumber(campaign[2])
local interval = 1000 / rate
local tolerance = (math.max(1, rate * A.burst_s) - 1) * interval
local tat = tonumber(campaign[3] or '0')
if A.queued < tat - tolerance then
  return err('early', {wait_ms = math.ceil(tat - tolerance - A.queued)})
end
if K.guard then
  local refusal = guard_refusal(K.guard, A.guard)
  if refusal then return refusal end
end
local rev = cas_transition(K.change, A.change)
if not rev then return err('stale') end
if K.guard then guard_count(K.guard, A.guard) end
enqueue_jobs(K.jobs, A.jobs)
redis.call('HSET', campaign_key, 'fire_tat', math.max(tat, A.queued) + interval)
redis.call('ZREM', K.released, id)
redis.call('ZREM', K.due, id)
local late = math.max(0, A.queued - A.scheduled)
redis.call('HINCRBY', campaign_key, 'fired', 1)
redis.call('HINCRBY', campaign_key, 'late_sum', late)
if late > tonumber(redis.call('HGET', campaign_key, 'late_max') or '0') then
  redis.call('HSET', campaign_key, 'late_max', late)
end
return ok(rev)
