-- Draws the ids of a new call or chat, and its creation time from the Redis clock, in one
-- step: creation order and id order are then the same order.
-- KEYS[1] record counter, KEYS[2] participant counter, KEYS[3] end-user counter, KEYS[4] end-users hash
-- ARGV[1] participants to draw, ARGV[2] end user's E.164 number ('' when the CRM knows them)
-- With KEYS[5], the request's token of its tenant's rate limit is taken first, in the same
-- round trip (ARGV[3] rate, ARGV[4] burst, ARGV[5] now ms): refused, it returns {0, ms to
-- wait} and draws nothing.
if KEYS[5] then
  local wait = take_tokens(KEYS[5], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), 1)
  if wait > 0 then return {0, wait} end
end
local id = redis.call('INCR', KEYS[1])
local count = tonumber(ARGV[1])
local first_participant = redis.call('INCRBY', KEYS[2], count) - count + 1
local end_user = 0
if ARGV[2] ~= '' then
  end_user = tonumber(redis.call('HGET', KEYS[4], ARGV[2]) or '0')
  if end_user == 0 then
    end_user = redis.call('INCR', KEYS[3])
    redis.call('HSET', KEYS[4], ARGV[2], end_user)
  end
end
local time = redis.call('TIME')
return {id, first_participant, end_user, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)}
