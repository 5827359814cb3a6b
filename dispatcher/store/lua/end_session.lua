-- Ends a consumer's SMS session (K.session) only if it is still the session of A.chat_id.
-- Answers whether it was deleted.
if redis.call('GET', K.session) == tostring(A.chat_id) then
  return ok(redis.call('DEL', K.session) == 1)
end
return ok(false)
