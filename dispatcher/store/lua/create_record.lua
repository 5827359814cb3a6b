-- Stores a new call or chat, its indexes and its first job as one atomic step, after the
-- claims that guard it: an agent's voice capacity (outbound calls) and the consumer's single
-- active SMS session (chats). Nothing is written when a claim fails.
-- K.record, K.all, K.by_status, K.by_type (its indexes), K.jobs; and as the record needs them:
-- K.agent (A.capacity: its voice capacity), K.session and K.do_not_contact (A.number, the
-- consumer, A.session_ttl ms), K.joins (the sorted set a call joins, at A.joins_score: a queued
-- call's waiting set, a scheduled call's scheduled set), K.once (the Idempotency-Key's hash,
-- A.once: fp, ttl, status, body of the answer, absent when it is A.doc), K.campaign,
-- K.campaign_due and K.campaign_calls (a call of a campaign, due at A.due ms, and the campaign's
-- list index).
-- A.doc, A.meta, A.status, A.score (created ms), A.id, A.lang. K.guard/A.guard: the company DNC
-- list and the contact limit the call may not start against (lib.lua's guard_refusal), checked
-- in this same step so that a number listed meanwhile either blocks the call or was listed
-- after it was stored. K.held: the tenant's held calls, which a call due outside its calling
-- window joins from the start (at A.held_until ms, counted by its campaign's `held`).
-- Answers ok, or err: `replay` (the first answer under the same key: fp, status, body; nothing
-- written), `campaign_cancelled`, `dnc`, `contact_limit` (with `retry_at`), `agent_busy`,
-- `opted_out`, `session_active`.
if K.once then
  local first = redis.call('HMGET', K.once, 'fp', 'status', 'body')
  if first[1] then return err('replay', {fp = first[1], status = first[2], body = first[3]}) end
end
if K.campaign then
  local state = redis.call('HGET', K.campaign, 'state')
  if state ~= CAMPAIGN.RUNNING and state ~= CAMPAIGN.PAUSED then return err('campaign_cancelled') end
end
if K.guard then
  local refusal = guard_refusal(K.guard, A.guard)
  if refusal then return refusal end
end
if K.agent then
  if redis.call('HGET', K.agent, 'status') ~= AGENT.AVAILABLE then return err('agent_busy') end
  local held = tonumber(redis.call('HGET', K.agent, 'voice') or '0')
  if held >= A.capacity then return err('agent_busy') end
end
if K.session then
  if redis.call('ZSCORE', K.do_not_contact, A.number) then return err('opted_out') end
  if not redis.call('SET', K.session, A.id, 'NX', 'PX', A.session_ttl) then
    return err('session_active')
  end
end
if K.agent then redis.call('HINCRBY', K.agent, 'voice', 1) end
if K.guard then guard_count(K.guard, A.guard) end
redis.call('HSET', K.record, 'doc', A.doc, 'meta', A.meta, 'status', A.status, 'rev', 1)
if A.lang then redis.call('HSET', K.record, 'lang', A.lang) end
redis.call('ZADD', K.all, A.score, member(A.id))
redis.call('ZADD', K.by_status, A.score, member(A.id))
redis.call('ZADD', K.by_type, A.score, member(A.id))
if K.joins then redis.call('ZADD', K.joins, A.joins_score, A.id) end
if K.campaign then
  -- Fired by the campaign's pump, at its pace, rather than by a job of its own.
  redis.call('ZADD', K.campaign_due, A.due, A.id)
  redis.call('ZADD', K.campaign_calls, A.score, member(A.id))
  redis.call('HINCRBY', K.campaign, 'total', 1)
  redis.call('HINCRBY', K.campaign, 'n:' .. A.status, 1)
  if K.held then redis.call('HINCRBY', K.campaign, 'held', 1) end
end
if K.held then redis.call('ZADD', K.held, A.held_until, A.id) end
enqueue_jobs(K.jobs, A.jobs)
if K.once then
  redis.call('HSET', K.once, 'fp', A.once.fp, 'status', A.once.status, 'body', A.once.body or A.doc)
  redis.call('PEXPIRE', K.once, A.once.ttl)
end
return ok()
