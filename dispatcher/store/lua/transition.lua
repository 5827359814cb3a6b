-- Compare-and-set of a stored call: applied only if its revision is still ARGV[1], so a stale or
-- repeated job changes nothing. Moves the status index, the menu's waiting set and the agent's
-- held calls, and queues follow-up jobs, all in the same atomic step (cas_transition in lib.lua,
-- where KEYS and ARGV are described). Returns the new revision, or 0 when the call changed
-- meanwhile (or does not exist).
local rev = cas_transition()
return rev
