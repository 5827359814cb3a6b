-- A page of the company DNC list at A.now ms (K.dnc, K.expiring), by the ms each was added,
-- then by number: entries A.offset to A.offset + A.per - 1. Expired entries are removed first,
-- up to A.most; while more remain the answer is {"ok": {"more": true}} and the caller asks
-- again. Else {"ok": {"total": n, "entries": [number, added ms, expires ms or "", ...]}}, the
-- ms as Redis writes scores (strings: cjson would round 15 digits).
if purge_dnc(K.dnc, K.expiring, A.now, A.most) == A.most
    and redis.call('ZCOUNT', K.expiring, '-inf', A.now) > 0 then
  return ok({more = true})
end
local page = redis.call('ZRANGE', K.dnc, A.offset, A.offset + A.per - 1, 'WITHSCORES')
local entries = {}
for i = 1, #page, 2 do
  local expires = redis.call('ZSCORE', K.expiring, page[i])
  entries[#entries + 1] = page[i]
  entries[#entries + 1] = page[i + 1]
  entries[#entries + 1] = expires or ''
end
return ok({total = redis.call('ZCARD', K.dnc), entries = entries})
