-- Wants a campaign's pump at A.wake ms (lib.lua's want_pump), after a batch stored calls of
-- the campaign: K.campaign, K.pump (the next pump job's keys), A.pump, A.now. A cancelled
-- campaign (whose calls were refused) wants none.
-- Answers err `stale` when the campaign's pumps were counted on since A.pump.seq was read.
local state = redis.call('HGET', K.campaign, 'state')
if state ~= CAMPAIGN.RUNNING and state ~= CAMPAIGN.PAUSED then return ok() end
if pump_moved(K.campaign, A.pump) then return err('stale') end
want_pump(K.campaign, K.pump, A.pump, A.wake, A.now)
return ok()
