-- Wants a campaign's pump at A.wake ms (lib.lua's want_pump), after a batch stored calls of
-- the campaign: K.campaign, K.pump (the next pump job's keys), A.pump, A.now.
-- Answers err `stale` when the campaign's pumps were counted on since A.pump.seq was read.
if pump_moved(K.campaign, A.pump) then return err('stale') end
want_pump(K.campaign, K.pump, A.pump, A.wake, A.now)
return ok()
