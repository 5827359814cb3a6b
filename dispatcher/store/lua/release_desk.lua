-- Deletes an agent's desk key (K.desk) only while it still names this desk (A.desk): a stream
-- that lost the desk must not clear its winner's. Answers whether it freed the desk.
if redis.call('GET', K.desk) == A.desk then
  redis.call('DEL', K.desk)
  return ok(true)
end
return ok(false)
