-- The last step of moving ended records to PostgreSQL (store/archiving.py), once their rows are
-- committed there: removes each record whose revision and history length are still what was
-- copied, with every key and index entry it owns. K.ended, K.archiving; per record in
-- K.records: {record (its hash), history, own (its other keys), entries (sorted sets holding
-- one of its members)}. A.records: per record {id, member (in the ended set), rev, length
-- (its history's), members (one per entry)}. A record that changed since it was copied stays
-- (it is copied again); one already gone is forgotten. Answers how many were removed.
local removed = 0
for i, r in ipairs(A.records) do
  local k = K.records[i]
  local rev = redis.call('HGET', k.record, 'rev')
  local same = rev and tonumber(rev) == r.rev and redis.call('LLEN', k.history) == r.length
  if same then
    redis.call('DEL', k.record, k.history)
    for _, key in ipairs(k.own or {}) do redis.call('DEL', key) end
    for j, key in ipairs(k.entries or {}) do redis.call('ZREM', key, r.members[j]) end
    removed = removed + 1
  end
  if same or not rev then
    redis.call('ZREM', K.ended, r.member)
    redis.call('SREM', K.archiving, r.id)
  end
end
return ok(removed)
