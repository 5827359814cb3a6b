"""The ARQ worker of `dispatcher worker` and `dispatcher up`: it outlives a Redis outage, runs
the webhook lane beside its own queue, and stops gracefully. What it takes from ARQ beyond its
public API, and why, is listed in workers/arq_compat.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from arq import Worker
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.utils import timestamp_ms, to_ms

from dispatcher.domain import clock
from dispatcher.store import heartbeats, jobs
from dispatcher.store.keys import Key
from dispatcher.store.scripts import ClaimJobs, FinishJob, Scripts
from workers.redis_lost import (
    POLL_FAILED,
    REDIS_DOWN,
    REDIS_POLL_BACKOFF_S,
    REDIS_RETRY_S,
    lost_redis,
)

log = structlog.get_logger("workers.worker")

# How often a stopping worker repeats the cancellation of its poll loop (_end_polling).
END_POLLING_RETRY_S = 1


class DispatchWorker(Worker):
    """ARQ's worker, kept running through a Redis outage (ARQ's own poll loop would end on the
    first connection error), with a graceful stop (`run_until`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Workers of other queues run inside this one, on its Redis client (create_worker).
        self.lanes: list[DispatchWorker] = []
        self.polls = 0
        self.worker_id = heartbeats.worker_id()
        self._next_beat = 0.0
        self._redis_lost_at: float | None = None
        # Jobs whose end could not be recorded because Redis was down, and when: their
        # in-progress keys would hold them back for in_progress_timeout_s.
        self._unrecorded: dict[str, float] = {}
        self._registered: Scripts | None = None  # on the pool, at the first claim or finish

    def stop_taking_jobs(self) -> None:
        """No new job from this worker's queue nor its lanes'; the running ones go on."""
        for worker in (self, *self.lanes):
            worker.allow_pick_jobs = False

    async def main(self) -> None:
        await self._wait_for_redis()
        if self.burst:  # the lanes' jobs come from this queue's: they run after it
            await super().main()
            for lane in self.lanes:
                await lane.main()
            return
        await self._main_with_lanes()

    async def _main_with_lanes(self) -> None:
        """This worker's poll loop and its lanes', side by side; one failing ends them all."""
        loops = [asyncio.ensure_future(super().main())]
        loops += [asyncio.ensure_future(lane.main()) for lane in self.lanes]
        try:
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for loop in done:
                loop.result()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _wait_for_redis(self) -> None:
        """A worker waits for Redis at start as it does for an outage later (ARQ's first call to
        Redis would end it)."""
        while True:
            try:
                await self.pool.ping()
                return
            except REDIS_DOWN as exc:
                self._note_redis_lost(exc)
                await asyncio.sleep(REDIS_RETRY_S)

    def _note_redis_lost(self, exc: BaseException) -> None:
        if self._redis_lost_at is None:
            self._redis_lost_at = time.monotonic()
            log.warning("redis unreachable, worker waiting for it", error=str(exc))

    async def _poll_iteration(self) -> None:
        """ARQ's poll, kept going through a Redis outage, with the heartbeat."""
        try:
            if self._redis_lost_at is not None:
                await self.pool.ping()  # back: say so now, not after a backlog's long poll
                down_s = round(time.monotonic() - self._redis_lost_at, 3)
                log.info("redis reachable again, worker resumed", down_s=down_s)
                self._redis_lost_at = None
            if self._unrecorded:
                await self._hand_back_unrecorded()
            await self._beat()
            await super()._poll_iteration()
        except Exception as exc:
            if not lost_redis(exc, POLL_FAILED):
                raise
            self._note_redis_lost(exc)
            await asyncio.sleep(REDIS_POLL_BACKOFF_S)
        finally:
            self.polls += 1

    async def _beat(self) -> None:
        """The heartbeat comes from the poll loop itself: a worker whose loop is stuck or dead
        stops beating, and goes stale within heartbeats.FRESH_MS."""
        if time.monotonic() >= self._next_beat:
            await heartbeats.beat(self.pool, self.worker_id, clock.to_ms(clock.now()))
            self._next_beat = time.monotonic() + heartbeats.BEAT_INTERVAL_S

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """ARQ's, with the whole batch claimed in one script (claim_jobs.lua) where ARQ runs a
        WATCH pipeline per job: as many of the jobs read as this worker has free slots (it
        waits for one), skipping those other workers run, none once stopping, and no slot kept
        when Redis fails."""
        ours = self.tasks  # running here: no need to ask Redis whether they run
        free = [job_id for job_id in job_ids if job_id.decode() not in ours]
        slots = await self._take_slots(len(free))
        try:
            claimed = await self._claim(free, slots) if self.allow_pick_jobs else []
        except BaseException:
            self._give_back(slots)
            raise
        self._give_back(slots - len(claimed))
        for job_id, score in claimed:
            self.job_counter += 1
            task = self.loop.create_task(self.run_job(job_id, score))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _take_slots(self, wanted: int) -> int:
        """Job slots for up to `wanted` jobs: the first waited for (as ARQ does), the others
        only if free now, within max_jobs."""
        if wanted == 0:
            return 0
        await self.sem.acquire()
        taken = 1
        while taken < wanted and not self.sem.locked():
            await self.sem.acquire()
            taken += 1
        room = max(self.max_jobs - self.job_counter, 0)
        self._give_back(taken - min(taken, room))
        return min(taken, room)

    def _give_back(self, slots: int) -> None:
        for _ in range(slots):
            self.sem.release()

    @property
    def _scripts(self) -> Scripts:
        """The scripts, registered on ARQ's pool (which exists only once the worker runs)."""
        if self._registered is None:
            self._registered = Scripts.register(self.pool)
        return self._registered

    async def _claim(self, job_ids: list[bytes], most: int) -> list[tuple[str, int]]:
        if not job_ids or most == 0:
            return []
        order = [job_id.decode() for job_id in job_ids]
        claim = ClaimJobs(
            queue=Key(self.queue_name),
            running={job_id: Key(in_progress_key_prefix + job_id) for job_id in order},
            order=order,
            most=most,
            now=timestamp_ms(),
            timeout=int(self.in_progress_timeout_s * 1000),
        )
        return await self._scripts.run(claim)

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """ARQ's record of a job's end, made by one script (finish_job.lua) where ARQ sends a
        MULTI/EXEC pipeline: the same keys written the same way."""
        ttl = None if keep_result_forever else result_timeout_s
        await self._scripts.run(
            FinishJob(
                running=Key(in_progress_key_prefix + job_id),
                result_key=Key(result_key_prefix + job_id),
                retry=Key(retry_key_prefix + job_id),
                job=Key(job_key_prefix + job_id),
                aborts=Key(abort_jobs_ss),
                queue=Key(self.queue_name),
                job_id=job_id,
                finish=finish,
                # The jobs' serializer writes JSON (store/jobs.py): the result is text.
                data=result_data.decode() if result_data else None,
                data_ttl=to_ms(ttl),
                incr_score=incr_score,
                keep_running=to_ms(keep_in_progress),
            )
        )

    async def run_job(self, job_id: str, score: int) -> None:
        """ARQ's, with the job's log fields; a lost Redis is noted, not let out to the loop."""
        # Every line logged while the job runs, ARQ's own included, names the job and its
        # record; each job runs in its own task, so the binding ends with it.
        with structlog.contextvars.bound_contextvars(**jobs.log_fields(job_id)):
            try:
                await super().run_job(job_id, score)
            except Exception as exc:
                if not lost_redis(exc, POLL_FAILED):
                    raise
                self._unrecorded[job_id] = time.monotonic()

    async def _hand_back_unrecorded(self) -> None:
        """Once Redis is back, the jobs whose end went unrecorded run again at once (they are
        still queued): their in-progress keys are deleted, unless they expired already and
        another worker may have taken the job since."""
        fresh_after = time.monotonic() - self.in_progress_timeout_s + 1
        ours = [job_id for job_id, at in self._unrecorded.items() if at > fresh_after]
        if ours:
            await self.pool.delete(*(in_progress_key_prefix + job_id for job_id in ours))
        self._unrecorded.clear()

    async def run_until(self, stop: asyncio.Event, grace_s: float) -> None:
        """Runs until `stop` is set (or a burst ends). Then it takes no new job, lets the
        running ones finish for up to `grace_s`, hands back the rest and closes."""
        polling = asyncio.ensure_future(self.async_run())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not polling.done():
                await asyncio.gather(
                    self._drain(grace_s), *(lane._drain(grace_s) for lane in self.lanes)
                )
                await self._end_polling(polling)
            with contextlib.suppress(asyncio.CancelledError):
                await polling
        finally:
            stopping.cancel()
            # Only left after a failure: ARQ's close() would re-raise their cancellations.
            left = [task for task in self.tasks.values() if not task.done()]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            self.tasks = {}
            await self.close()

    async def _drain(self, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        self.allow_pick_jobs = False
        # A poll that began before the flag may still be starting jobs: wait for it to end
        # (briefly: a worker stopped while still starting up has no poll to wait for).
        polled, settled = self.polls, loop.time() + 2
        while self.polls <= polled and loop.time() < settled:
            await asyncio.sleep(self.poll_delay_s)
        running = [task for task in self.tasks.values() if not task.done()]
        log.info("worker stopping", queue=self.queue_name, running=len(running), grace_s=grace_s)
        if running:
            await asyncio.wait(running, timeout=max(deadline - loop.time(), 0))
        late = [job_id for job_id, task in self.tasks.items() if not task.done()]
        for job_id in late:
            # Cancelling the job itself lets ARQ's run_job record it as "cancelled, will be
            # run again": its in-progress key goes, so any worker runs it again at once.
            job_task = self.job_tasks.get(job_id)
            (job_task or self.tasks[job_id]).cancel()
        if late:
            await asyncio.wait([self.tasks[job_id] for job_id in late], timeout=5)
        finished = len(running) - len(late)
        log.info("worker stopped", queue=self.queue_name, finished=finished, handed_back=len(late))

    async def _end_polling(self, polling: asyncio.Future[None]) -> None:
        """Cancels ARQ's poll loop, again each second until it ends: a cancellation can be
        lost in the Redis client when a socket timeout of its own fires at the same moment
        (seen with Sentinel-managed connections on Python 3.11), and the loop then polls on."""
        tries = 0
        while not polling.done():
            if tries:
                log.warning("worker poll loop still running, cancelling it again", tries=tries)
            if self.main_task is not None:
                self.main_task.cancel()
            await asyncio.wait({polling}, timeout=END_POLLING_RETRY_S)
            tries += 1

    async def close(self) -> None:
        for lane in self.lanes:
            await lane.close()
        if self._pool is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await heartbeats.leave(self._pool, self.worker_id)
        try:
            await super().close()
        except REDIS_DOWN:
            log.warning("redis unreachable while the worker closed")
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
            if self._pool is not None:
                await self._pool.aclose()
                self._pool = None


class LaneWorker(DispatchWorker):
    """A worker of another queue run inside a DispatchWorker, on its Redis client (closed by
    it): its own job slots, functions and ctx. It takes the same care of Redis outages and
    stops with it; the process's heartbeat is the main worker's."""

    async def _beat(self) -> None:
        return

    async def close(self) -> None:
        for job_task in self.job_tasks.values():
            job_task.cancel()  # ARQ records each as "cancelled, will be run again"
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks = {}
        if self._pool is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await self._pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        self._pool = None
