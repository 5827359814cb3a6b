-- Offers a queued call to agents who are available, have a voice slot free of calls and of
-- other open offers (an agent rings for one call per free slot, as a phone would), and were
-- never offered this call before (declined or expired offers are not repeated).
-- K.call, K.call_offers (agent id -> offer id), K.offer_seq, K.history (the call's);
-- K.existing (offer id -> key: the call's offers when the caller read them), K.agents and
-- K.agent_offers (agent id -> the agent's hash, its open offers), K.offers (the keys of the
-- first offer ids the caller reserved, A.first onwards, one a candidate).
-- A.call_id, A.now, A.expires (ms), A.candidates (id, capacity, group), A.first, A.reserved
-- (how many ids the caller reserved: at least one a candidate); A.channels (agent id -> the
-- agent's events channel), A.events (the tenant's), A.offered_at and A.expires_at (A.now and
-- A.expires as the offers' ISO times): each offer made is announced to its agent, and the
-- batch to the tenant, by this step (store/agents.py's make_offers read them from here).
-- K.next_step/A.next_step, or K.next_step_offered/A.next_step_offered when an offer was made:
-- the call's next routing step, queued here too (none for a call no longer queued).
-- Offers of the call that rang out unanswered are marked expired first: their agents are free
-- to ring for other calls (the caller wakes them), though never again for this one. Reserved
-- ids left unused go back to the counter unless another reservation came after.
-- Answers {made: agent id, offer id, ... of the offers made; rang_out: ids of the agents whose
-- offers rang out}, or err `stale` when the call got offers the caller did not read.
local function settle(used)
  local last = A.first + A.reserved - 1
  if A.reserved > 0 and tonumber(redis.call('GET', K.offer_seq) or '0') == last then
    redis.call('SET', K.offer_seq, A.first - 1 + used)
  end
end
if redis.call('HGET', K.call, 'status') ~= CALL.QUEUED then
  settle(0)
  return ok({made = {}, rang_out = {}})
end
local made, rang_out = {}, {}
local offered = redis.call('HGETALL', K.call_offers)
local offered_to = {}
for i = 2, #offered, 2 do
  if not K.existing[offered[i]] then
    settle(0)
    return err('stale')
  end
  offered_to[offered[i - 1]] = true
end
local entries = {}
for i = 1, #offered, 2 do
  local offer_key = K.existing[offered[i + 1]]
  local offer = redis.call('HMGET', offer_key, 'state', 'expires_at')
  if offer[1] == OFFER.OPEN and tonumber(offer[2]) <= A.now then
    redis.call('HSET', offer_key, 'state', OFFER.EXPIRED)
    table.insert(rang_out, offered[i])
    table.insert(entries, offer_entry(A.now, OFFER_STEP.EXPIRED, offered[i], offered[i + 1]))
  end
end
local used = 0
local made_to = {}
for _, candidate in ipairs(A.candidates) do
  local agent_id = tostring(candidate.id)
  local agent_key, agent_offers = K.agents[agent_id], K.agent_offers[agent_id]
  local agent = not offered_to[agent_id] and redis.call('HMGET', agent_key, 'status', 'voice')
  if agent and agent[1] == AGENT.AVAILABLE
      and tonumber(agent[2] or '0') + ringing(agent_offers, A.now) < candidate.capacity then
    used = used + 1
    local offer_id, offer_key = A.first + used - 1, K.offers[used]
    redis.call('HSET', offer_key, 'call_id', A.call_id, 'agent_id', agent_id,
      'group', candidate.group, 'offered_at', A.now, 'expires_at', A.expires,
      'state', OFFER.OPEN)
    redis.call('PEXPIREAT', offer_key, A.expires + 86400000)
    redis.call('HSET', K.call_offers, agent_id, offer_id)
    redis.call('ZADD', agent_offers, A.expires, offer_id)
    table.insert(made, agent_id)
    table.insert(made, offer_id)
    table.insert(made_to, candidate.id)
    table.insert(entries, offer_entry(A.now, OFFER_STEP.OFFERED, agent_id, offer_id))
    redis.call('PUBLISH', A.channels[agent_id], string.format(
      '{"event":"offer","data":{"id":%d,"call_id":%d,"group":%s,"offered_at":"%s","expires_at":"%s"}}',
      offer_id, A.call_id, cjson.encode(candidate.group), A.offered_at, A.expires_at))
  end
end
record_histories(K.history, entries)
if #made_to > 0 then
  redis.call('PUBLISH', A.events, cjson.encode(
    {type = 'offers.made', call_id = A.call_id, agent_ids = made_to}))
  enqueue_jobs(K.next_step_offered, A.next_step_offered)
else
  enqueue_jobs(K.next_step, A.next_step)
end
settle(used)
return ok({made = made, rang_out = rang_out})
