-- Agents have voice slots free again (a call ended, an offer went to someone else, was
-- declined or rang out): which waiting calls to route again so that they ring for them. The
-- oldest calls of the agents' menus are taken in turn; a call is taken when one of the agents
-- can take it (speaks its language, was never offered it, has a slot left), and it takes a
-- slot of every such agent, since routing offers it to all of them at once. Every other
-- waiting call stays asleep: no wake-up storm, however long the queue.
-- K.agents and K.agent_offers (agent id -> its hash, its open offers), K.calls and
-- K.call_offers (call id -> its hash, its offers); A.now, A.agents (id, capacity, languages),
-- A.waiting (the call ids the caller read from the menus' waiting sets, oldest first).
-- Answers the call ids to route again, oldest first.
local agents = {}
for _, agent in ipairs(A.agents) do
  local id = tostring(agent.id)
  local speaks = {}
  for _, language in ipairs(agent.languages) do speaks[language] = true end
  if redis.call('HGET', K.agents[id], 'status') == AGENT.AVAILABLE then
    local free = agent.capacity - busy_slots(K.agents[id], K.agent_offers[id], A.now)
    if free > 0 then table.insert(agents, {id = id, free = free, speaks = speaks}) end
  end
end
local picked, slots_left = {}, 0
for _, agent in ipairs(agents) do slots_left = slots_left + agent.free end
for _, raw in ipairs(A.waiting) do
  if slots_left == 0 then break end
  local call_id = tostring(raw)
  local lang = redis.call('HGET', K.calls[call_id], 'lang')
  local taken = false
  for _, agent in ipairs(agents) do
    if agent.free > 0 and (not lang or agent.speaks[lang])
        and redis.call('HEXISTS', K.call_offers[call_id], agent.id) == 0 then
      agent.free = agent.free - 1
      slots_left = slots_left - 1
      taken = true
    end
  end
  if taken then table.insert(picked, call_id) end
end
return ok(picked)
