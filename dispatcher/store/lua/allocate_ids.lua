-- Draws the ids of a new call or chat, and its creation time from the Redis clock, in one
-- step: creation order and id order are then the same order.
-- K: record, participant and end-user counters, end_users (E.164 -> id); A.participants to
-- draw, A.number the end user's number (absent when the CRM knows them).
-- With K.bucket, the request's token of its tenant's rate limit is taken first, in the same
-- round trip: refused, it answers err `rate_limited` with the ms to wait and draws nothing.
if K.bucket then
  local wait = take_tokens(K.bucket, A.bucket, 1)
  if wait > 0 then return err('rate_limited', {wait_ms = wait}) end
end
local id = redis.call('INCR', K.record_seq)
local count = A.participants
local first_participant = redis.call('INCRBY', K.participant_seq, count) - count + 1
local end_user = 0
if A.number then
  end_user = tonumber(redis.call('HGET', K.end_users, A.number) or '0')
  if end_user == 0 then
    end_user = redis.call('INCR', K.end_user_seq)
    redis.call('HSET', K.end_users, A.number, end_user)
  end
end
local time = redis.call('TIME')
return ok({id, first_participant, end_user,
  tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)})
