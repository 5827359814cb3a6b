-- Compare-and-set of a stored call or chat (lib.lua's cas_transition, K.change and A.change),
-- and its follow-up jobs in the same atomic step: a stale or repeated job changes nothing.
-- Answers the new revision, or err `stale` when the record changed meanwhile (or is gone).
local rev = cas_transition(K.change, A.change)
if not rev then return err('stale') end
enqueue_jobs(K.jobs, A.jobs)
return ok(rev)
