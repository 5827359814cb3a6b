-- A job's end as ARQ's finish_job records it (arq/worker.py: one MULTI/EXEC of up to five
-- commands), in one step: K.running (its in-progress key) deleted, or kept A.keep_running ms
-- more; A.finish: its result stored at K.result (A.data, for A.data_ttl ms or for good
-- without one), its try counter K.retry and its body K.job deleted, and A.job_id taken out of
-- K.aborts and K.queue; not finished: its score in K.queue raised by A.incr_score, if given.
local gone = {}
if A.keep_running then
  redis.call('PEXPIRE', K.running, A.keep_running)
else
  gone[#gone + 1] = K.running
end
if A.finish then
  if A.data and A.data_ttl then
    redis.call('SET', K.result, A.data, 'PX', A.data_ttl)
  elseif A.data then
    redis.call('SET', K.result, A.data)
  end
  gone[#gone + 1] = K.retry
  gone[#gone + 1] = K.job
  redis.call('ZREM', K.aborts, A.job_id)
  redis.call('ZREM', K.queue, A.job_id)
elseif A.incr_score then
  redis.call('ZINCRBY', K.queue, A.incr_score, A.job_id)
end
if #gone > 0 then redis.call('DEL', unpack(gone)) end
return ok()
