-- The first accept wins: the offer must be open and unexpired, the call still queued at the
-- revision the new document was built from, and the agent available with a free voice slot.
-- Then the call is assigned (lib.lua's cas_transition, the one way a call changes status), the
-- agent holds one more call, every other open offer of the call is withdrawn and the connect
-- job is queued, all at once.
-- K.offer, K.change (the assignment, as cas_transition's), K.agent and K.agent_offers (the
-- accepting agent's), K.call_offers (agent id -> offer id), K.others (offer id -> key: the
-- call's offers when the caller read them), K.other_agent_offers (agent id -> its open
-- offers), K.jobs, K.recent_waits (the menu's latest `<now>:<waited>`, A.waits_kept kept);
-- A.now, A.offer_id, A.agent_id, A.capacity, A.change, A.jobs, A.waited; A.other_channels
-- (agent id -> events channel): each agent whose offer is withdrawn is told so here, after the
-- assignment's own announcement (cas_transition's).
-- Answers the agents and offers withdrawn (agent id, offer id, ...), or err: `gone`, `busy`,
-- `stale` (the call changed, or got offers the caller did not read).
local offer = redis.call('HMGET', K.offer, 'state', 'expires_at')
if offer[1] ~= OFFER.OPEN or tonumber(offer[2]) <= A.now then return err('gone') end
local call = redis.call('HMGET', K.change.record, 'status', 'rev')
if call[1] ~= CALL.QUEUED then return err('gone') end
if tonumber(call[2]) ~= A.change.rev then return err('stale') end
if redis.call('HGET', K.agent, 'status') ~= AGENT.AVAILABLE
    or tonumber(redis.call('HGET', K.agent, 'voice') or '0') >= A.capacity then
  return err('busy')
end
local others = redis.call('HGETALL', K.call_offers)
for i = 2, #others, 2 do
  if not K.others[others[i]] then return err('stale') end
end
redis.call('HSET', K.offer, 'state', OFFER.ACCEPTED)
redis.call('HINCRBY', K.agent, 'voice', 1)
cas_transition(K.change, A.change)
redis.call('ZREM', K.agent_offers, A.offer_id)
local entries = {offer_entry(A.now, OFFER_STEP.ACCEPTED, A.agent_id, A.offer_id)}
local withdrawn = {}
for i = 1, #others, 2 do
  local agent_id, offer_id = others[i], others[i + 1]
  local other_key = K.others[offer_id]
  if offer_id ~= tostring(A.offer_id) and redis.call('HGET', other_key, 'state') == OFFER.OPEN then
    redis.call('HSET', other_key, 'state', OFFER.WITHDRAWN)
    redis.call('ZREM', K.other_agent_offers[agent_id], offer_id)
    table.insert(withdrawn, agent_id)
    table.insert(withdrawn, offer_id)
    table.insert(entries, offer_entry(A.now, OFFER_STEP.WITHDRAWN, agent_id, offer_id))
    redis.call('PUBLISH', A.other_channels[agent_id], string.format(
      '{"event":"offer_withdrawn","data":{"id":%d,"call_id":%d}}', offer_id, A.change.id))
  end
end
record_histories(K.change.history, entries)
enqueue_jobs(K.jobs, A.jobs)
redis.call('LPUSH', K.recent_waits, A.now .. ' ' .. A.waited)
redis.call('LTRIM', K.recent_waits, 0, A.waits_kept - 1)
return ok(withdrawn)
