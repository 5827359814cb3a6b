-- Takes numbers off the company DNC list (store/dnc.py), all in this one step, in order.
-- K.dnc, K.expiring; A.numbers; A.now ms. Answers one letter a number: r (removed), n (not on
-- the list: never added, removed before, or expired, whose leftovers go too).
local answer = {}
for _, number in ipairs(A.numbers) do
  answer[#answer + 1] = on_dnc(K.dnc, K.expiring, number, A.now) and 'r' or 'n'
  redis.call('ZREM', K.dnc, number)
  redis.call('ZREM', K.expiring, number)
end
return ok(table.concat(answer))
