-- Queues ARQ jobs (see enqueue_jobs). KEYS[1] ARQ queue; ARGV as enqueue_jobs reads it from 1.
enqueue_jobs(KEYS[1], 1)
return 1
