-- Sets agents' statuses (store/agents.py's set_statuses) in one atomic step, so that no call
-- can be taken between the look at an agent's calls and the change.
-- K.agents (agent id -> its hash); A.ids (the answer's order), A.status. With A.guard, an agent
-- holding a call (a system status) keeps its status. With A.logout (a forced logout), an agent
-- holding a call becomes unavailable now, so that nothing more is offered to them, and offline
-- once their last call ends (lib.lua's release_voice honours the `logout` field). Any other
-- change drops a pending logout.
-- Answers per agent {id, previous status, current status, held: 1 when holding a call}.
local out = {}
for _, raw in ipairs(A.ids) do
  local key = K.agents[tostring(raw)]
  local previous = redis.call('HGET', key, 'status') or AGENT.OFFLINE
  local held = tonumber(redis.call('HGET', key, 'voice') or '0') > 0
  local current = A.status
  if held and A.logout then
    if previous ~= AGENT.OFFLINE then current = AGENT.UNAVAILABLE end
    redis.call('HSET', key, 'status', current, 'logout', 1)
  elseif held and A.guard then
    current = previous
  else
    redis.call('HSET', key, 'status', current)
    redis.call('HDEL', key, 'logout')
  end
  table.insert(out, {raw, previous, current, held and 1 or 0})
end
return ok(out)
