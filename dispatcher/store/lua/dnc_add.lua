-- Adds numbers to the company DNC list (store/dnc.py), all in this one step, in order.
-- K.dnc, K.expiring; A.entries: number, expires_at ms (0: never) in turn; A.now ms.
-- A number not on the list (an expired entry counts as absent) is added at A.now; one on it
-- keeps when it was added. Either way its expiry is A's: a number given none no longer expires.
-- Answers one letter an entry, in order: c (created), u (updated).
local answer = {}
local entries = A.entries
for i = 1, #entries, 2 do
  local number, expires = entries[i], entries[i + 1]
  if on_dnc(K.dnc, K.expiring, number, A.now) then
    answer[#answer + 1] = 'u'
  else
    redis.call('ZADD', K.dnc, A.now, number)
    answer[#answer + 1] = 'c'
  end
  if expires > 0 then
    redis.call('ZADD', K.expiring, expires, number)
  else
    redis.call('ZREM', K.expiring, number)
  end
end
return ok(table.concat(answer))
