"""The reconcile loop: one loop converges every owned run to its desired state.

Each tick gathers inputs (finished attempts, due retries, desired-state
changes, runs to claim, deadlines), applies them to the in-memory
:class:`~tideflow.engine.runstate.RunState` of each run, writes every change
in ONE transaction through the :class:`~tideflow.engine.ports.Store` (fenced
by run ownership), and only after that commit carries out the consequences:
attempts start, and each run's :class:`~tideflow.engine.runstate.Effects`
taken with its writes (attempts cancelled, events emitted, retries timed,
the run let go of) are performed. A crash at any
point therefore loses nothing that was reported, and never re-runs an attempt
whose success was committed.

Store calls block, so they run on one dedicated thread; the event loop keeps
serving task coroutines meanwhile, and completions that arrive during a
commit are all handled by the next tick (group commit). A store that can
commit a small batch without waiting (``commit_inline``, see
:class:`~tideflow.engine.ports.InlineCommit`) is asked to do so on the loop
first, which saves the hop to that thread and back; it declines when it
would have to wait, and the batch then goes through the thread as usual.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from tideflow.engine.driving import Driven, Ending, EngineSettings, Event, new_owner_id
from tideflow.engine.execution import Attempt, Executor, Outcome
from tideflow.engine.leases import Leases
from tideflow.engine.ports import (
    Batch,
    EventRecord,
    InlineCommit,
    RunRecord,
    Store,
    TaskRecord,
    utcnow,
)
from tideflow.engine.runstate import Effects, RunState
from tideflow.engine.slots import Admission, PoolSlots
from tideflow.errors import StorageError, ValidationError

__all__ = ["Driven", "Ending", "Engine", "EngineSettings", "Event", "new_owner_id"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A run and the effects taken with its writes in one commit.
Taken = list[tuple[RunState, Effects]]

#: The largest batch (rows written) offered to ``Store.commit_inline``: a bigger
#: one could hold up the event loop, so it is always committed on the DB thread.
INLINE_COMMIT_ROWS = 64


class Engine:
    """Drives runs: claims them, dispatches their tasks, records every transition."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        settings: EngineSettings | None = None,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.executor = executor
        self.settings = settings or EngineSettings()
        self.clock = clock
        self._leases = Leases(
            owner or new_owner_id(),
            self.settings.lease_seconds,
            self.settings.poll_seconds,
            clock(),
        )
        self.runs: dict[int, RunState] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self._db = ThreadPoolExecutor(1, thread_name_prefix="tideflow-db")
        self._attempts: dict[tuple[int, str], asyncio.Task[Outcome]] = {}
        self._cancelled: set[asyncio.Task[Outcome]] = set()
        self._done: list[tuple[int, str, int, asyncio.Task[Outcome]]] = []
        #: What the loop awaits between ticks (see _wait); _signal resolves it.
        self._waiter: asyncio.Future[None] | None = None
        self._inline = store.commit_inline if isinstance(store, InlineCommit) else None
        self._timers: list[tuple[datetime, int, str]] = []
        self._slots = PoolSlots(self.settings.pools, self.settings.poll_seconds)
        self._admission = Admission(self.settings.slots, self._slots)
        self.serving = False
        self._draining = False
        #: Set to stop: nothing new is claimed or started (see drive_until and serve).
        self._stop: asyncio.Event | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def owner(self) -> str:
        """The owner id this engine writes on the runs it claims."""
        return self._leases.owner

    # -- public entry points ------------------------------------------------------

    async def drive(self, run_id: int) -> RunRecord:
        """Drive one run to its end in this process and return its final record.

        If another live engine owns the run, follow it through the database
        instead; its lease decides who executes, so the two cooperate.
        """
        return (await self.drive_until(run_id, None)).record

    async def drive_until(self, run_id: int, stop: asyncio.Event | None) -> Driven:
        """Drive one run until it finishes or ``stop`` is set, and say which happened.

        Like :meth:`drive` otherwise. Once ``stop`` is set nothing new starts.
        If this engine owns the run it hands it back at once (see
        :meth:`_hand_back`): attempts in flight are cancelled, their task
        instances queued for a new attempt, and the run released in the same
        commit, so another engine continues it without waiting for the lease
        to expire (:attr:`Ending.HANDED_BACK`). If another engine owns it,
        this one just stops following it (:attr:`Ending.STOPPED_FOLLOWING`).

        Args:
            run_id: The run to drive.
            stop: Set it to stop; None drives the run to its end.

        Returns:
            The run as read after driving ended, and how it ended.
        """
        self._stop = stop
        self._leases.want(run_id)
        self._subscribe()
        watcher = self._watch(stop)
        try:
            await self._publish_pools()
            while stop is None or not stop.is_set():
                await self._tick(stop)
                if run_id not in self.runs:
                    record = await self._call(self.store.get_run_by_id, run_id)
                    if record.phase.finished:
                        return Driven(record, Ending.FINISHED)
            owned = run_id in self.runs
            self._leases.unwant(run_id)  # so nothing claims it again while handing back
            await self._hand_back()
            record = await self._call(self.store.get_run_by_id, run_id)
            if record.phase.finished:  # its last attempts ended as it was stopped
                return Driven(record, Ending.FINISHED)
            return Driven(record, Ending.HANDED_BACK if owned else Ending.STOPPED_FOLLOWING)
        finally:
            if watcher is not None:
                watcher.cancel()
            self._leases.unwant(run_id)
            await self.shutdown()

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim and drive every unfinished run until ``stop`` is set, then drain.

        Draining starts nothing new and lets running attempts finish (their
        outcomes are committed) for up to ``shutdown_grace_seconds``; what is
        still running then is cancelled and handed back to the next owner,
        which runs it again as a new attempt.
        """
        self.serving = True
        self._stop = stop
        self._subscribe()
        watcher = self._watch(stop)
        try:
            await self._publish_pools()
            while not stop.is_set():
                await self._tick(stop)
            self.serving = False
            self._draining = True
            grace = self.clock() + timedelta(seconds=self.settings.shutdown_grace_seconds)
            if self._attempts:
                logger.info(
                    "draining %d running attempt(s)", len(self._attempts), extra={"action": "drain"}
                )
            while self._attempts and self.clock() < grace:
                await self._tick()
        finally:
            if watcher is not None:
                watcher.cancel()
            self.serving = False
            await self.shutdown()

    async def shutdown(self) -> None:
        """Hand every owned run back (see :meth:`_hand_back`) and release threads.

        Best effort: if the database cannot be reached, the runs' leases
        expire and the next owner treats their Running tasks as lost.
        """
        try:
            if self._unsubscribe is not None:
                await asyncio.to_thread(self._unsubscribe)
                self._unsubscribe = None
            await self._hand_back()
        finally:
            self._db.shutdown(wait=True)
            self.executor.close()

    async def _hand_back(self) -> None:
        """Give every owned run back now, its attempts in flight re-queued.

        Attempts are cancelled and awaited (the executor kills their processes
        and children). Outcomes that arrived first are recorded as usual; the
        task instances still Running are queued for a new attempt, with a log
        line on the interrupted one, which does not count against the task's
        retry limit (:meth:`RunState.hand_back`). One commit writes that and
        clears each run's owner and lease, so any engine may claim it at once.
        """
        for task in self._attempts.values():
            task.cancel()
        pending = [*self._attempts.values(), *self._cancelled]
        if pending:
            # Their done callbacks run before this resumes, so _collect sees them all.
            await asyncio.gather(*pending, return_exceptions=True)
        now = self.clock()
        self._collect(now)
        self._attempts.clear()
        if not self.runs and not self._leases.reclaiming:
            return
        for run in self.runs.values():
            run.hand_back(now)
        batch, taken = self._gather(now, release=True)
        try:
            await self._write(batch)
        except StorageError as exc:
            logger.error(
                "cannot hand %d run(s) back; their leases will expire: %s",
                len(self.runs),
                exc,
                extra={"action": "hand-back"},
            )
        else:
            # Their attempts were all cancelled above and nothing will be timed:
            # of the effects, only the events are left to carry out.
            for run, effects in taken:
                if self.runs.get(run.id) is run:  # not lost in the commit
                    self._emit(run, effects.events)
            for run in self.runs.values():
                logger.info(
                    "run %s: handed back",
                    run.record.name,
                    extra={"action": "hand-back", "run": run.record.name},
                )
        for run_id in self.runs:
            self._admission.forget(run_id)
        self.runs.clear()
        self._leases.handed_back()

    # -- the loop -----------------------------------------------------------------

    def _subscribe(self) -> None:
        """Poll at once when the database reports a new run or a control request."""
        loop = asyncio.get_running_loop()

        def notified() -> None:
            self._leases.poll_now(self.clock())
            self._signal()

        def wake() -> None:  # called from the listener's thread
            loop.call_soon_threadsafe(notified)

        self._unsubscribe = self.store.subscribe(wake)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def _watch(self, stop: asyncio.Event | None) -> asyncio.Task[None] | None:
        """Wake the loop when ``stop`` is set (one task per drive, not a waiter per tick)."""
        if stop is None:
            return None

        async def watch() -> None:
            await stop.wait()
            self._signal()

        return asyncio.create_task(watch(), name="tideflow:stop")

    def _signal(self) -> None:
        """Something happened that the loop should act on now: end its wait."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, stop: asyncio.Event | None) -> None:
        if self._done or (stop is not None and stop.is_set()):
            return
        now = self.clock()
        wake_at = self._leases.wake_at
        if self._timers:
            wake_at = min(wake_at, self._timers[0][0])
        for run in self.runs.values():
            deadline = run.deadline()
            if deadline is not None:
                wake_at = min(wake_at, deadline)
        delay = max(0.0, (wake_at - now).total_seconds())
        if delay <= 0:
            return
        # One future and one timer per wait: completions, notifications and
        # ``stop`` (see _watch) resolve it through _signal.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(delay, self._signal)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _tick(self, stop: asyncio.Event | None = None) -> None:
        await self._wait(stop)
        if stop is not None and stop.is_set():
            return  # the caller drains or hands back; claiming or starting now would be wasted
        now = self.clock()
        try:
            if self._leases.poll_due(now):
                await self._poll(now)
                now = self.clock()
            renew = self._leases.to_renew(now, self.runs)
            if renew:
                await self._renew(renew, now)
        except StorageError as exc:
            # Nothing was changed in memory: the next poll simply tries again.
            logger.error("database unavailable: %s", exc, extra={"action": "poll"})
        self._collect(now)
        self._fire_timers(now)
        self._enforce_deadlines(now)
        to_start = self._dispatch(now, request=True)
        if self._slots.wants:
            await self._acquire(now)
            to_start += self._dispatch(now, request=False)
            self._slots.return_unused_grants()
        batch, taken = self._gather(now)
        try:
            await self._write(batch)
        except StorageError as exc:
            self._abandon(exc, to_start, taken)
            await asyncio.sleep(self.settings.poll_seconds)
            return
        self._after_commit(to_start, taken)

    def _abandon(self, exc: StorageError, to_start: list[Attempt], taken: Taken) -> None:
        """The tick's transaction failed, so the database still holds the state before
        it: drop the in-memory state of every run (its attempts are cancelled and will
        run again as new attempts) and adopt the runs afresh from the database.

        The tick's effects are dropped with it, except that what they would have
        cancelled is cancelled now (those attempts run again too), and the slots
        taken by the attempts that were to start are freed. Re-adopting a run
        derives its effects again (its retries' timers) from the database.
        """
        logger.error(
            "database unavailable, re-adopting %d run(s): %s",
            len(self.runs),
            exc,
            extra={"action": "commit"},
        )
        for attempt in to_start:
            run = self.runs.get(attempt.run_id)
            if run is not None:
                self._admission.release(run, attempt.task)
        for run, effects in taken:
            for name in effects.cancel:
                self._stop_attempt(run, name)
        self._leases.reclaim(self.runs)
        self._lose(set(self.runs), quiet=True)

    async def _poll(self, now: datetime) -> None:
        """Learn desired-state changes of owned runs, and claim runs to drive."""
        if self.runs:
            control = await self._call(self.store.read_control, list(self.runs))
            for run_id, (desired, generation) in control.items():
                run = self.runs.get(run_id)
                if run is not None and generation != run.seen_generation:
                    logger.info(
                        "run %s: desired state %s",
                        run.record.name,
                        desired.value,
                        extra={"action": "control", "run": run.record.name},
                    )
                    run.apply_desired(desired, generation, self.clock())
        until = self._leases.until(now)
        claimed: list[RunRecord] = []
        for run_id in self._leases.to_claim(self.runs):
            record = await self._call(self.store.claim_run, run_id, self.owner, now, until)
            self._leases.asked(run_id)
            if record is not None:
                claimed.append(record)
        if self.serving:
            claimed += await self._call(
                self.store.claim_runs, self.owner, now, until, self.settings.claim_batch
            )
        for record in claimed:
            if record.id in self.runs:
                # Our own lease had run out (a stalled loop, a clock jump) and the claim
                # took it back: the state in memory, attempts and all, is still right.
                continue
            tasks = await self._call(self.store.load_tasks, record.id)
            # Before the run's state is built: what the executor still follows
            # stays Running as the same attempt, the rest runs again.
            following = await self._reattach(record, tasks)
            run = RunState(record, tasks, self.clock(), reattached=following)
            self.runs[record.id] = run
            await self._follow(run, following, now)
            logger.info(
                "run %s: claimed", record.name, extra={"action": "claim", "run": record.name}
            )

    async def _reattach(
        self, record: RunRecord, tasks: list[TaskRecord]
    ) -> dict[str, tuple[Attempt, Coroutine[Any, Any, Outcome]]]:
        """Ask the executor to follow each attempt the run's previous owner left Running.

        Returns:
            Instance name -> (its attempt, the coroutine following it to its
            outcome) for each attempt the executor reattached to. The others
            are closed as lost by :class:`RunState` and run again.
        """
        following: dict[str, tuple[Attempt, Coroutine[Any, Any, Outcome]]] = {}
        for attempt in RunState.orphans(record, tasks):
            try:
                found = await self.executor.reattach(attempt)
            except Exception:
                # Not fatal: the task runs again as a new attempt, as if it had died.
                logger.exception(
                    "run %s: cannot reattach to attempt %d of %s",
                    record.name,
                    attempt.number,
                    attempt.task,
                    extra={"action": "reattach", "run": record.name},
                )
                continue
            if found is None:
                continue
            if isinstance(found, Outcome):
                found = _ended(found)
            following[attempt.task] = (attempt, found)
            logger.info(
                "run %s: reattached to attempt %d of %s",
                record.name,
                attempt.number,
                attempt.task,
                extra={"action": "reattach", "run": record.name},
            )
        return following

    async def _follow(
        self,
        run: RunState,
        following: dict[str, tuple[Attempt, Coroutine[Any, Any, Outcome]]],
        now: datetime,
    ) -> None:
        """Track the reattached attempts of a just-claimed run like attempts started here.

        They take the engine's and the run's slots, and their pool slots again:
        claiming the run dropped the previous owner's holdings. A pool that is
        full now cannot stop an attempt that already runs; it only delays
        other tasks of the pool until a slot is free.
        """
        pooled: dict[str, list[tuple[int, str]]] = {}
        for name, (attempt, work) in following.items():
            if name not in run.running:  # not adopted as running after all: never started
                work.close()
                continue
            self._admission.adopt(run, name)
            pool = run.specs[run.instances[name].task].pool
            if pool is not None:
                pooled.setdefault(pool, []).append((run.id, name))
            self._track(attempt, work)
        for pool, keys in pooled.items():
            try:
                granted = await self._call(self.store.acquire_slots, self.owner, pool, keys, now)
            except StorageError as exc:
                granted = []
                logger.error(
                    "cannot take slots of pool %s: %s", pool, exc, extra={"action": "acquire"}
                )
            if len(granted) < len(keys):
                logger.warning(
                    "run %s: %d reattached attempt(s) run over the capacity of pool %s",
                    run.record.name,
                    len(keys) - len(granted),
                    pool,
                    extra={"action": "reattach", "run": run.record.name},
                )

    async def _renew(self, run_ids: list[int], now: datetime) -> None:
        """Renew the leases of ``run_ids``; another engine has the ones not renewed."""
        until = self._leases.until(now)
        kept = await self._call(self.store.renew_leases, self.owner, run_ids, until)
        self._lose(set(run_ids) - kept)

    def _lose(self, run_ids: set[int], *, quiet: bool = False) -> None:
        """Another engine owns these runs now: stop touching them at once."""
        for run_id in run_ids:
            run = self.runs.pop(run_id, None)
            if run is None:
                continue
            if not quiet:
                logger.warning(
                    "run %s: lease lost; abandoning it to its new owner",
                    run.record.name,
                    extra={"action": "lease-lost", "run": run.record.name},
                )
            for name in list(run.running):
                self._stop_attempt(run, name)
            self._admission.forget(run_id)

    def _stop_attempt(self, run: RunState, name: str) -> None:
        """Cancel the attempt of ``name`` in flight, if any, and free its slots."""
        task = self._attempts.pop((run.id, name), None)
        if task is not None:
            self._cancel(task)
            self._admission.release(run, name)

    def _collect(self, now: datetime) -> None:
        done, self._done = self._done, []
        for run_id, name, number, task in done:
            run = self.runs.get(run_id)
            if self._attempts.get((run_id, name)) is task:
                del self._attempts[(run_id, name)]
                if run is not None:
                    self._admission.release(run, name)
            if run is None or task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                outcome = Outcome("failed", error=f"executor error: {type(exc).__name__}: {exc}")
            else:
                outcome = task.result()
            run.complete(name, number, outcome, now)

    def _fire_timers(self, now: datetime) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, run_id, name = heapq.heappop(self._timers)
            run = self.runs.get(run_id)
            if run is not None:
                run.retry_due(name)

    def _enforce_deadlines(self, now: datetime) -> None:
        for run in self.runs.values():
            deadline = run.deadline()
            if deadline is not None and now >= deadline and not run.finished:
                timeout = run.record.workflow.spec.timeout_seconds
                run.stop(now, f"the run exceeded its timeout of {timeout:g}s")

    def _dispatch(self, now: datetime, *, request: bool) -> list[Attempt]:
        if self._stopping():
            return []
        return self._admission.dispatch(self.runs.values(), now, request=request)

    def _stopping(self) -> bool:
        return self._draining or (self._stop is not None and self._stop.is_set())

    async def _publish_pools(self) -> None:
        """Write the pool capacities of this engine's settings into the database.

        The stored capacity is the one every engine counts against (an engine
        never passes its own number when it takes slots): settings are
        configuration as code, applied when an engine starts, and ``tideflow
        pool set`` changes the stored value in between. A capacity that could
        not be written is tried again before the next slots are taken.
        """
        for pool, capacity in sorted(self._slots.unpublished.items()):
            try:
                await self._call(self.store.set_pool_capacity, pool, capacity)
            except StorageError as exc:
                logger.error(
                    "cannot store the capacity of pool %s: %s",
                    pool,
                    exc,
                    extra={"action": "publish-pools"},
                )
                return
            except ValidationError as exc:  # a bad name or capacity: trying again will not help
                logger.error(
                    "pool %s is misconfigured: %s", pool, exc, extra={"action": "publish-pools"}
                )
                del self._slots.unpublished[pool]
                continue
            del self._slots.unpublished[pool]
            logger.info(
                "pool %s: capacity %d (from the settings)",
                pool,
                capacity,
                extra={"action": "publish-pools"},
            )

    async def _acquire(self, now: datetime) -> None:
        if self._slots.unpublished:
            await self._publish_pools()
        for pool, keys in self._slots.take_wants().items():
            if not keys:
                continue
            try:
                granted = await self._call(self.store.acquire_slots, self.owner, pool, keys, now)
            except StorageError as exc:
                logger.error(
                    "cannot take slots of pool %s: %s", pool, exc, extra={"action": "acquire"}
                )
                granted = []
            self._slots.answered(pool, keys, granted, now)

    def _gather(self, now: datetime, *, release: bool = False) -> tuple[Batch, Taken]:
        """Take every run's writes of the tick into one batch, and with them the
        effects to carry out once it is committed; with ``release``, give every
        owned run up in it too (handing back)."""
        batch = Batch(self.owner, self._leases.until(now))
        batch.slot_releases = self._slots.take_releases()
        taken: Taken = []
        for run in self.runs.values():
            runs, inserts, updates, logs = run.take_writes()
            batch.run_updates += runs
            batch.task_inserts += inserts
            batch.task_updates += updates
            batch.logs += logs
            effects = run.take_effects()
            if effects:
                taken.append((run, effects))
                batch.events += effects.events
            if release or effects.release:
                batch.release.append(run.id)
        if release:
            batch.release += self._leases.to_release(self.runs)
        return batch, taken

    async def _write(self, batch: Batch) -> None:
        """Commit ``batch``; drop the runs it found another engine owns now."""
        if not batch:
            return
        lost = self._inline(batch) if self._inline is not None and _small(batch) else None
        if lost is None:  # no inline commit, or it would have waited: through the DB thread
            lost = await self._call(self.store.commit, batch)
        if lost:
            self._lose(lost)

    def _after_commit(self, to_start: list[Attempt], taken: Taken) -> None:
        for attempt in to_start:
            run = self.runs.get(attempt.run_id)
            if run is None:
                continue
            if self._stopping():
                # Stopped during this tick's commit: the attempt is committed Running
                # but never starts; handing back queues it again like a cancelled one.
                self._admission.release(run, attempt.task)
                continue
            self._start(attempt)
        for run, effects in taken:
            if self.runs.get(run.id) is run:  # not lost in the commit
                self._carry_out(run, effects)

    def _carry_out(self, run: RunState, effects: Effects) -> None:
        """Perform what the committed transitions of ``run`` call for."""
        for name in effects.cancel:
            self._stop_attempt(run, name)
        self._emit(run, effects.events)
        for at, name in effects.timers:
            heapq.heappush(self._timers, (at, run.id, name))
        if effects.release:
            logger.info(
                "run %s: %s",
                run.record.name,
                run.record.phase.value,
                extra={"action": "finish", "run": run.record.name},
            )
            del self.runs[run.id]
            self._admission.forget(run.id)

    def _cancel(self, task: asyncio.Task[Outcome]) -> None:
        task.cancel()
        self._cancelled.add(task)
        task.add_done_callback(self._cancelled.discard)

    def _start(self, attempt: Attempt) -> None:
        self._track(attempt, self.executor.execute(attempt))

    def _track(self, attempt: Attempt, work: Coroutine[Any, Any, Outcome]) -> None:
        """Run ``work`` as ``attempt`` in flight; its outcome completes the attempt."""
        key = (attempt.run_id, attempt.task)
        task = asyncio.create_task(work, name=f"tideflow:{attempt.task}")
        self._attempts[key] = task
        number = attempt.number

        def done(t: asyncio.Task[Outcome]) -> None:
            self._done.append((key[0], key[1], number, t))
            self._signal()

        task.add_done_callback(done)

    def _emit(self, run: RunState, events: Sequence[EventRecord]) -> None:
        """Hand the run's committed events to the listeners, in order, each with
        the run's task counts after the commit."""
        if not events or not self.listeners:
            return
        counts = run.counts()
        for record in events:
            event = Event.of(record, counts)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    logger.exception("event listener failed", extra={"action": "emit"})


def _small(batch: Batch) -> bool:
    """Whether ``batch`` is small enough to commit on the event loop."""
    rows = (
        len(batch.run_updates)
        + len(batch.task_inserts)
        + len(batch.task_updates)
        + len(batch.logs)
        + len(batch.events)
        + len(batch.release)
        + len(batch.slot_releases)
    )
    return rows <= INLINE_COMMIT_ROWS


async def _ended(outcome: Outcome) -> Outcome:
    """An attempt that ended while no engine followed it, as an attempt in flight."""
    return outcome
