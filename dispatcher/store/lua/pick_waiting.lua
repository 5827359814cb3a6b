-- Agents have voice slots free again (a call ended, an offer went to someone else, was
-- declined or rang out): which waiting calls to route again so that they ring for them. The
-- oldest calls of the agents' menus are taken in turn; a call is taken when one of the agents
-- can take it (speaks its language, was never offered it, has a slot left), and it takes a
-- slot of every such agent, since routing offers it to all of them at once. Every other
-- waiting call stays asleep: no wake-up storm, however long the queue.
-- KEYS the waiting sets of the agents' menus
-- ARGV[1] tenant key prefix, ARGV[2] calls looked at per menu, ARGV[3] now ms, then per agent:
-- id, voice capacity, number of languages, the languages
-- Returns the call ids to route again, oldest first.
local prefix = ARGV[1]
local agents = {}
local i = 4
while i <= #ARGV do
  local id, capacity, count = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local agent_key = prefix .. 'agent:' .. id
  local speaks = {}
  for j = 1, count do speaks[ARGV[i + 2 + j]] = true end
  if redis.call('HGET', agent_key, 'status') == 'available' then
    local free = capacity - busy_slots(agent_key, ARGV[3])
    if free > 0 then table.insert(agents, {id = id, free = free, speaks = speaks}) end
  end
  i = i + 3 + count
end
if #agents == 0 then return {} end
local waiting = {}
for k = 1, #KEYS do
  local members = redis.call('ZRANGE', KEYS[k], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
  for j = 1, #members, 2 do table.insert(waiting, {tonumber(members[j + 1]), members[j]}) end
end
table.sort(waiting, function(a, b) return a[1] < b[1] end)
local picked, slots_left = {}, 0
for _, agent in ipairs(agents) do slots_left = slots_left + agent.free end
for _, entry in ipairs(waiting) do
  if slots_left == 0 then break end
  local call_key = prefix .. 'call:' .. entry[2]
  local lang = redis.call('HGET', call_key, 'lang')
  local taken = false
  for _, agent in ipairs(agents) do
    if agent.free > 0 and (not lang or agent.speaks[lang])
        and redis.call('HEXISTS', call_key .. ':offers', agent.id) == 0 then
      agent.free = agent.free - 1
      slots_left = slots_left - 1
      taken = true
    end
  end
  if taken then table.insert(picked, entry[2]) end
end
return picked
