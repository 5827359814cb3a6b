-- Holds a call of a campaign that may not start yet (outside its calling window, over its
-- contact limit): the compare-and-set that says so in its object (lib.lua's cas_transition,
-- A.change.held_until: when it may), and the call goes back among the campaign's calls not yet
-- fired (K.due), due then, leaving those handed to a fire job (K.released); the campaign's
-- pump is wanted for it (K.pump, A.pump, A.now), or a campaign whose every call is held would
-- stall. A paused or cancelled campaign's pump is wanted by its resume, or by nothing.
-- Answers the new revision, or err `stale` (the call or the campaign's pumps changed meanwhile).
local campaign_key = K.change.campaign
if pump_moved(campaign_key, A.pump) then return err('stale') end
local rev = cas_transition(K.change, A.change)
if not rev then return err('stale') end
redis.call('ZREM', K.released, A.change.id)
redis.call('ZADD', K.due, A.change.held_until, A.change.id)
if redis.call('HGET', campaign_key, 'state') == CAMPAIGN.RUNNING then
  want_pump(campaign_key, K.pump, A.pump, A.change.held_until, A.now)
end
return ok(rev)
