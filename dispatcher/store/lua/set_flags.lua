-- Sets customer flags on a call that exists; never creates a half record.
-- K.call; A.flags field -> value. Answers err `missing` when there is no such call.
if redis.call('EXISTS', K.call) == 0 then return err('missing') end
for field, value in pairs(A.flags) do redis.call('HSET', K.call, field, value) end
-- A new revision: an archiver that read the call before this change does not delete it.
redis.call('HINCRBY', K.call, 'rev', 1)
return ok()
