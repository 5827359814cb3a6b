-- Declines an open offer; the agent stays on the call's offer list, so is not offered it again.
-- K.offer, K.agent_offers (the agent's open offers), K.history (the call's); A.offer_id, A.now.
-- Answers err `gone` when the offer is not open.
local offer = redis.call('HMGET', K.offer, 'state', 'agent_id')
if offer[1] ~= OFFER.OPEN then return err('gone') end
redis.call('HSET', K.offer, 'state', OFFER.DECLINED)
redis.call('ZREM', K.agent_offers, A.offer_id)
record_history(K.history, offer_entry(A.now, OFFER_STEP.DECLINED, offer[2], A.offer_id))
return ok()
