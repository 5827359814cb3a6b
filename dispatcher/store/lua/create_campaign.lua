-- Creates a campaign under a name not yet taken by another of the tenant's campaigns.
-- K.names (name -> id), K.seq (the campaign counter), K.all (every id by creation ms), K.campaign
-- (the hash of the campaign numbered A.id, the counter's next value when the caller read it).
-- A.name, A.menu_id, A.rate, A.max_waiting ('' for no cap), A.rules (JSON: its own calling window
-- and contact limit), A.now.
-- Answers the id, or err `taken` with the `id` of the campaign that has the name already, or
-- err `stale` when another campaign took the number meanwhile (the caller reads it again).
local taken = redis.call('HGET', K.names, A.name)
if taken then return err('taken', {id = tonumber(taken)}) end
if tonumber(redis.call('GET', K.seq) or '0') + 1 ~= A.id then return err('stale') end
redis.call('SET', K.seq, A.id)
redis.call('HSET', K.campaign,
  'id', A.id, 'name', A.name, 'menu_id', A.menu_id, 'rate', A.rate, 'max_waiting', A.max_waiting,
  'state', CAMPAIGN.RUNNING, 'created_at', A.now, 'total', 0, 'fired', 0, 'late_sum', 0,
  'late_max', 0, 'held', 0, 'rules', A.rules)
redis.call('HSET', K.names, A.name, A.id)
redis.call('ZADD', K.all, A.now, A.id)
return ok(A.id)
