-- The first step of moving ended records to PostgreSQL (store/archiving.py): reads each record
-- still in the ended set at or before the cutoff, marks it as being moved (the archiving set)
-- and numbers the pass. K.ended, K.archiving, K.seq; per record (same order as A.ids) its hash
-- in K.records, its history (a call's) or messages (a chat's) in K.histories, its offers hash
-- in K.offers (calls only). A.ids, A.members (their index members), A.cutoff (ms).
-- Answers {seq, records: [{id, fields (HGETALL, flat), history, offers (flat)}]}; a member
-- whose record is gone leaves the ended set and the archiving set.
local seq = redis.call('INCR', K.seq)
local records = {}
for i, id in ipairs(A.ids) do
  local score = redis.call('ZSCORE', K.ended, A.members[i])
  if score and tonumber(score) <= A.cutoff then
    local fields = redis.call('HGETALL', K.records[i])
    if #fields == 0 then
      redis.call('ZREM', K.ended, A.members[i])
      redis.call('SREM', K.archiving, id)
    else
      redis.call('SADD', K.archiving, id)
      local offers = {}
      if K.offers then offers = redis.call('HGETALL', K.offers[i]) end
      records[#records + 1] = {
        id = id,
        fields = fields,
        history = redis.call('LRANGE', K.histories[i], 0, -1),
        offers = offers,
      }
    end
  end
end
return ok({seq = seq, records = records})
