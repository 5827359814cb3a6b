-- Queues ARQ jobs (lib.lua's enqueue_jobs).
enqueue_jobs(K.jobs, A.jobs)
return ok()
