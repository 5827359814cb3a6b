-- Draws the ids of new calls or chats (one, or a batch's, in order), and their creation time
-- from the Redis clock, in one step: creation order and id order are then the same order.
-- K: record, participant and end-user counters, end_users (E.164 -> id); A.records, one per
-- record: its participants to draw, and its end user's number (absent when the CRM knows
-- them). A number met twice in a batch gets one end-user id.
-- With K.bucket, the request's token of its tenant's rate limit is taken first, in the same
-- round trip: refused, it answers err `rate_limited` with the ms to wait and draws nothing.
-- Answers {ids: {record id, first participant id, end-user id or 0} per record, created: ms}.
if K.bucket then
  local wait = take_tokens(K.bucket, A.bucket, 1)
  if wait > 0 then return err('rate_limited', {wait_ms = wait}) end
end
local count, participants = #A.records, 0
for _, record in ipairs(A.records) do participants = participants + record.participants end
local record_id = redis.call('INCRBY', K.record_seq, count) - count
local participant = redis.call('INCRBY', K.participant_seq, participants) - participants
local ids = {}
for i, record in ipairs(A.records) do
  local end_user = 0
  if record.number then
    end_user = tonumber(redis.call('HGET', K.end_users, record.number) or '0')
    if end_user == 0 then
      end_user = redis.call('INCR', K.end_user_seq)
      redis.call('HSET', K.end_users, record.number, end_user)
    end
  end
  ids[i] = {record_id + i, participant + 1, end_user}
  participant = participant + record.participants
end
local time = redis.call('TIME')
return ok({ids = ids,
  created = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)})
