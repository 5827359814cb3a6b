"""What the workers take from ARQ beyond its public API, each with the reason no option or hook
does it (tests/workers/test_arq_compat.py holds ARQ to this list, and to pyproject's range).

ARQ's public API is its Worker's constructor options (on_startup, on_shutdown, on_job_start,
on_job_end, after_job_end, max_jobs, poll_delay, queue_read_limit, job_completion_wait,
health_check_*, redis_pool, ...), `func` and `Retry`, and `run`, `async_run` and `close`. The
workers use those wherever they can: job options through `func`, a lost Redis in a job through
`Retry`, the webhook lane's pool through `redis_pool`. What remains is below; an ARQ upgrade that
renames or reshapes any of it fails the test, not a worker in production. Two options that
look like they fit do not (docs/decisions.md, ARQ): `job_completion_wait` for the graceful stop,
and ARQ's health check for the heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Internal:
    """A name of arq.Worker the workers rely on; `signature` as inspect.signature prints it
    (empty for an attribute an instance carries)."""

    name: str
    signature: str
    why: str


# The methods DispatchWorker and LaneWorker (workers/worker.py) override.
OVERRIDDEN = (
    Internal(
        "_poll_iteration",
        "(self) -> None",
        "ARQ's poll loop ends on the first error of a poll, and nothing keeps it polling through "
        "a Redis outage (RedisSettings' retries cover only the first connection). The wrapper "
        "also says when Redis is back, hands back jobs whose end went unrecorded, beats the "
        "heartbeat from the loop itself (a stuck loop goes stale) and counts polls for the stop.",
    ),
    Internal(
        "start_jobs",
        "(self, job_ids: list[bytes]) -> None",
        "ARQ claims each job of a poll by its own WATCH pipeline (four round trips a job, and "
        "two workers reading the same due jobs fight over each): the batch is claimed in one "
        "script instead (claim_jobs.lua), setting the same in-progress keys. ARQ also reads "
        "allow_pick_jobs once per poll (a stopping worker would start a whole batch) and keeps "
        "the job slot it took when Redis fails under its pipeline.",
    ),
    Internal(
        "finish_job",
        "(self, job_id: str, finish: bool, result_data: Optional[bytes], result_timeout_s: "
        "Optional[float], keep_result_forever: bool, incr_score: Optional[int], "
        "keep_in_progress: Optional[float]) -> None",
        "ARQ records a job's end with a MULTI/EXEC pipeline of up to five commands, the "
        "costliest round trip a job makes: one script (finish_job.lua) writes the same keys.",
    ),
    Internal(
        "run_job",
        "(self, job_id: str, score: int) -> None",
        "A job whose end ARQ could not record (Redis lost in its finish pipeline) must not end "
        "the poll loop, and its in-progress key goes once Redis is back: after_job_end is not "
        "called then. The job's log fields are bound here, not in on_job_start, which comes "
        "after ARQ's own lines for an expired job, an unknown function or too many tries.",
    ),
    Internal(
        "main",
        "(self) -> None",
        "Public, but not a hook: a worker waits for Redis before ARQ's first call to it, and "
        "runs its lanes' poll loops beside its own (one failing ends them all).",
    ),
    Internal(
        "close",
        "(self) -> None",
        "Public: closes the lanes first, removes the heartbeat, and still runs on_shutdown and "
        "closes the pool when Redis is down (ARQ's close stops at its first Redis error). A "
        "lane's close leaves the pool it shares with its worker open.",
    ),
)

# What the workers call, read or write without overriding it.
USED = (
    Internal(
        "_release_sem_dec_counter_on_complete",
        "(self) -> None",
        "What a job's end does to its slot (the done callback of each run_job task start_jobs "
        "makes, as ARQ's own start_jobs sets it).",
    ),
    Internal("sem", "", "The job slots: start_jobs takes one per job it claims, as ARQ's does."),
    Internal("job_counter", "", "The jobs running, counted on by start_jobs as ARQ's does."),
    Internal("max_jobs", "", "The job slots in all: start_jobs claims no more than are free."),
    Internal("loop", "", "The event loop start_jobs makes each run_job task on, as ARQ's does."),
    Internal("queue_name", "", "The queue whose jobs claim_jobs.lua claims."),
    Internal("allow_pick_jobs", "", "ARQ's own switch for taking no new job (the graceful stop)."),
    Internal(
        "tasks",
        "",
        "The running run_job tasks: the graceful stop waits for them; a lane's close, and a "
        "stop after a failure, end them and empty the table.",
    ),
    Internal(
        "job_tasks",
        "",
        "The jobs' own tasks: cancelling one (not its run_job) makes ARQ record the job as "
        "'cancelled, will be run again' and free its in-progress key.",
    ),
    Internal(
        "main_task",
        "",
        "The poll loop's task, cancelled to end it (again if a cancellation gets lost).",
    ),
    Internal(
        "_pool",
        "",
        "Whether a worker is still open (ARQ's close returns early without it, and clears it). "
        "A close while Redis is down, which ARQ's close gives up on, clears it itself; a lane's "
        "close drops its reference to the client it shares without closing it.",
    ),
    Internal(
        "in_progress_timeout_s",
        "",
        "How long an in-progress key holds a job: an unrecorded job older than that may run "
        "on another worker already, and its key is left alone.",
    ),
    Internal(
        "health_check_key",
        "",
        "Deleted by a lane's close, as ARQ's close does (a lane does not call it).",
    ),
    Internal(
        "poll_delay_s", "", "The graceful stop waits in poll delays for the last poll to end."
    ),
)
