-- A campaign's pump: hands its calls to fire jobs, oldest first, each queued at the time it may
-- fire. The pace is kept on those firing times (GCRA, the virtual-scheduling form of a token
-- bucket): calls fire at most `rate` a second, `burst` of them at once, whatever the number of
-- workers; and at most `max_waiting` calls wait in the menu's queue, counting those handed over
-- and not yet fired. Calls that may fire within the lookahead are handed over now, so a campaign
-- under its pace fires on time. Then the pump wants itself again for the next call that may fire
-- (or, while the queue is full, a short poll). A paused or cancelled campaign releases nothing
-- (a resume wakes the pump again).
-- K.campaign, K.due (calls not yet fired, by scheduled ms), K.released (calls handed to a fire
-- job, by hand-over ms), K.waiting (the menu's), K.queue, K.fires (call id -> its fire job's
-- key), K.pump (the next pump job's keys).
-- A.now, A.fires (call id -> its fire job's id and payload: the calls the caller saw due), A.pump,
-- A.lookahead ms, A.min_interval (least ms between pumps), A.most (calls a run), A.burst_s
-- (burst in seconds of rate), A.full_poll (ms while the queue is full), A.stale_after (ms after
-- which a handed call whose job never ran is handed again).
-- Answers {calls released, state}, or err `stale` when the pumps were counted on since
-- A.pump.seq was read (nothing done: the caller reads again).
local now = A.now
local c = redis.call('HMGET', K.campaign, 'state', 'rate', 'max_waiting', 'tat', 'pump_at')
if not c[1] then return ok({0, 'missing'}) end
if pump_moved(K.campaign, A.pump) then return err('stale') end
if c[5] and tonumber(c[5]) <= now then redis.call('HDEL', K.campaign, 'pump_at') end
if c[1] ~= CAMPAIGN.RUNNING then return ok({0, c[1]}) end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.released, '-inf', now - A.stale_after)) do
  redis.call('ZREM', K.released, id)
  redis.call('ZADD', K.due, now, id)
end
-- GCRA: one call every `interval` ms; a call may fire `tolerance` ms ahead of the theoretical
-- arrival time `tat` (so `burst` calls may fire together after a quiet spell).
local interval = 1000 / tonumber(c[2])
local tolerance = (math.max(1, tonumber(c[2]) * A.burst_s) - 1) * interval
local tat = tonumber(c[4] or '0')
local room = A.most
-- A.most 0: held by its menu's estimated wait; nothing released, looked at again in a poll.
local capped = room == 0
if c[3] and c[3] ~= '' then
  local free = tonumber(c[3]) - redis.call('ZCARD', K.waiting) - redis.call('ZCARD', K.released)
  if free <= room then room, capped = free, true end
end
local horizon = now + A.lookahead
local due = {}
if room > 0 then
  due = redis.call('ZRANGEBYSCORE', K.due, '-inf', horizon, 'WITHSCORES', 'LIMIT', 0, room)
end
local released = 0
for i = 1, #due, 2 do
  local id = due[i]
  local fire = A.fires[id]
  -- Due since the caller looked: the next pump (wanted below for it) hands it over.
  if not fire then break end
  local at = math.floor(math.max(tonumber(due[i + 1]), tat - tolerance, now))
  if at > horizon then break end
  redis.call('ZREM', K.due, id)
  redis.call('ZADD', K.released, now, id)
  redis.call('SET', K.fires[id], fire.payload, 'PX', at - now + 86400000)
  redis.call('ZADD', K.queue, at, fire.job)
  tat = math.max(tat, at) + interval
  released = released + 1
end
redis.call('HSET', K.campaign, 'tat', tat)
local first = redis.call('ZRANGE', K.due, 0, 0, 'WITHSCORES')
if #first > 0 then
  local wake = math.max(tonumber(first[2]), tat - tolerance) - A.lookahead
  if capped and released >= room then wake = now + A.full_poll end
  want_pump(K.campaign, K.pump, A.pump, math.max(wake, now + A.min_interval), now)
end
return ok({released, CAMPAIGN.RUNNING})
