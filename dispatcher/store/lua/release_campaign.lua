-- A campaign's pump: hands its calls to fire jobs, oldest first, each queued at the time it may
-- fire. The pace is kept on those firing times (GCRA, the virtual-scheduling form of a token
-- bucket): calls fire at most `rate` a second, `burst` of them at once, whatever the number of
-- workers; and at most `max_waiting` calls wait in the menu's queue, counting those handed over
-- and not yet fired. Calls that may fire within the lookahead are handed over now, so a campaign
-- under its pace fires on time. Then the pump wants itself again for the next call that may fire
-- (or, while the queue is full, a short poll). A paused or cancelled campaign releases nothing
-- (a resume wakes the pump again).
-- KEYS[1] campaign hash, KEYS[2] calls not yet fired (by scheduled ms), KEYS[3] calls handed
-- to a fire job (by hand-over ms), KEYS[4] the menu's waiting set, KEYS[5] ARQ queue
-- ARGV[1] now ms, ARGV[2] fire job id prefix, ARGV[3] fire payload up to the call id,
-- ARGV[4] fire payload after it, ARGV[5] pump job id prefix, ARGV[6] pump payload,
-- ARGV[7] lookahead ms, ARGV[8] least ms between pumps, ARGV[9] most calls a run, ARGV[10]
-- burst in seconds of rate, ARGV[11] poll ms while the queue is full, ARGV[12] ms after which a
-- handed call whose job never ran is handed again
-- Returns {calls released, state}.
local now = tonumber(ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'state', 'rate', 'max_waiting', 'tat', 'pump_at')
if not c[1] then return {0, 'missing'} end
if c[5] and tonumber(c[5]) <= now then redis.call('HDEL', KEYS[1], 'pump_at') end
if c[1] ~= 'running' then return {0, c[1]} end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[12]))) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[2], now, id)
end
-- GCRA: one call every `interval` ms; a call may fire `tolerance` ms ahead of the theoretical
-- arrival time `tat` (so `burst` calls may fire together after a quiet spell).
local interval = 1000 / tonumber(c[2])
local tolerance = (math.max(1, tonumber(c[2]) * tonumber(ARGV[10])) - 1) * interval
local tat = tonumber(c[4] or '0')
local room = tonumber(ARGV[9])
local capped = false
if c[3] and c[3] ~= '' then
  local free = tonumber(c[3]) - redis.call('ZCARD', KEYS[4]) - redis.call('ZCARD', KEYS[3])
  if free <= room then room, capped = free, true end
end
local horizon = now + tonumber(ARGV[7])
local due = {}
if room > 0 then
  due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon, 'WITHSCORES', 'LIMIT', 0, room)
end
local released = 0
for i = 1, #due, 2 do
  local id = due[i]
  local at = math.floor(math.max(tonumber(due[i + 1]), tat - tolerance, now))
  if at > horizon then break end
  local job = ARGV[2] .. id .. ':r' .. now
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('SET', 'arq:job:' .. job, ARGV[3] .. id .. ARGV[4], 'PX', at - now + 86400000)
  redis.call('ZADD', KEYS[5], at, job)
  tat = math.max(tat, at) + interval
  released = released + 1
end
redis.call('HSET', KEYS[1], 'tat', tat)
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first > 0 then
  local wake = math.max(tonumber(first[2]), tat - tolerance) - tonumber(ARGV[7])
  if capped and released >= room then wake = now + tonumber(ARGV[11]) end
  want_pump(KEYS[1], KEYS[5], ARGV[5], ARGV[6], math.max(wake, now + tonumber(ARGV[8])), now)
end
return {released, 'running'}
