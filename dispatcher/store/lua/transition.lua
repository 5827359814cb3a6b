-- Compare-and-set of a stored call or chat (lib.lua's cas_transition, K.change and A.change),
-- and its follow-up jobs in the same atomic step: a stale or repeated job changes nothing. With
-- K.guard/A.guard (a scheduled call firing), only if the call may start (lib.lua's
-- guard_refusal), which it then counts as an attempt: a number added to the DNC list is either
-- added before this step, and blocks it, or after it.
-- With K.redialling (a campaign call failing, its redial's job among A.jobs), the call joins its
-- campaign's redials being made, at A.now, in the same step: the campaign never reads
-- `completed` between the failure and its redial.
-- Answers the new revision, or err `stale` when the record changed meanwhile (or is gone), or
-- guard_refusal's err (`dnc`, `contact_limit`).
if K.guard then
  local refusal = guard_refusal(K.guard, A.guard)
  if refusal then return refusal end
end
local rev = cas_transition(K.change, A.change)
if not rev then return err('stale') end
if K.guard then guard_count(K.guard, A.guard) end
if K.redialling then redis.call('ZADD', K.redialling, A.now, A.change.id) end
enqueue_jobs(K.jobs, A.jobs)
return ok(rev)
