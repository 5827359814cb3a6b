-- A worker's claim of the due jobs its poll read: up to A.most of the jobs of A.order (in that
-- order) that are still queued in K.queue, due by A.now and run by no worker (their in-progress
-- key, K.running[id], absent) get that key for A.timeout ms, as ARQ's start_jobs sets it. One
-- script for the batch, where ARQ runs a WATCH pipeline (four round trips) per job; the jobs
-- other workers claimed are skipped, so workers reading the same due jobs take disjoint ones.
-- Answers the claimed jobs, in order, each {id, score}.
local claimed = {}
for _, id in ipairs(A.order) do
  if #claimed >= A.most then break end
  local running = K.running[id]
  if redis.call('EXISTS', running) == 0 then
    local score = redis.call('ZSCORE', K.queue, id)
    if score and tonumber(score) <= A.now then
      redis.call('SET', running, '1', 'PX', A.timeout)
      claimed[#claimed + 1] = {id, tonumber(score)}
    end
  end
end
return ok(claimed)
