"""The reconcile loop: one loop converges every owned run to its desired state.

Each tick gathers inputs (finished attempts, due retries, desired-state
changes, runs to claim, deadlines), applies them to the in-memory
:class:`~tideflow.engine.runstate.RunState` of each run, writes every change
in ONE transaction through the :class:`~tideflow.engine.ports.Store` (fenced
by run ownership), and only after that commit performs the consequences:
attempts start, attempts are cancelled, events are emitted. A crash at any
point therefore loses nothing that was reported, and never re-runs an attempt
whose success was committed.

Store calls block, so they run on one dedicated thread; the event loop keeps
serving task coroutines meanwhile, and completions that arrive during a
commit are all handled by the next tick (group commit).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from tideflow.engine.execution import Attempt, Executor, Outcome
from tideflow.engine.ports import Batch, RunRecord, Store, utcnow
from tideflow.engine.runstate import RunState
from tideflow.errors import StorageError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class EngineSettings:
    """Knobs of one engine process."""

    #: Attempts this engine runs at once, across all runs.
    slots: int = 64
    #: Named pools shared by all runs on this engine: name -> capacity.
    pools: dict[str, int] = field(default_factory=dict)
    #: How long a claimed run stays ours without renewal. Renewed every third of it.
    lease_seconds: float = 30.0
    #: How often desired-state changes and new runs are polled for.
    poll_seconds: float = 1.0
    #: Runs claimed per poll (server mode).
    claim_batch: int = 16
    #: On shutdown, how long running attempts may take to finish before they are cancelled.
    shutdown_grace_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Event:
    """Emitted after the transition it reports is committed (the seam for plugins)."""

    kind: str
    run: str
    run_id: int
    task: str | None
    at: datetime
    counts: dict[str, int] | None = None


def new_owner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


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
        self.owner = owner or new_owner_id()
        self.clock = clock
        self.runs: dict[int, RunState] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self._db = ThreadPoolExecutor(1, thread_name_prefix="tideflow-db")
        self._attempts: dict[tuple[int, str], asyncio.Task[Outcome]] = {}
        self._cancelled: set[asyncio.Task[Outcome]] = set()
        self._done: list[tuple[int, str, int, asyncio.Task[Outcome]]] = []
        self._wake = asyncio.Event()
        self._timers: list[tuple[datetime, int, str]] = []
        self._in_use = 0
        #: Pool slots held by this engine's attempts, per pool.
        self._pool_use: dict[str, int] = {}
        #: Pool slots to ask the database for this tick, granted ones not yet started,
        #: slots to give back in the next commit, and when to ask again after a refusal.
        self._wants: dict[str, list[tuple[int, str]]] = {}
        self._granted: set[tuple[int, str]] = set()
        self._slot_releases: list[tuple[int, str]] = []
        self._pool_retry_at: dict[str, datetime] = {}
        self._run_use: dict[int, int] = {}
        self._next_poll = self.clock()
        self._next_renew = self.clock()
        self._wanted: set[int] = set()
        #: Runs we still own in the database but dropped from memory (failed commit).
        self._reclaim: set[int] = set()
        self.serving = False
        self._draining = False
        self._unsubscribe: Callable[[], None] | None = None

    # -- public entry points ------------------------------------------------------

    async def drive(self, run_id: int) -> RunRecord:
        """Drive one run to its end in this process and return its final record.

        If another live engine owns the run, follow it through the database
        instead; its lease decides who executes, so the two cooperate.
        """
        self._wanted.add(run_id)
        self._subscribe()
        try:
            while True:
                await self._tick()
                if run_id not in self.runs:
                    record = await self._call(self.store.get_run_by_id, run_id)
                    if record.phase.finished:
                        return record
        finally:
            self._wanted.discard(run_id)
            await self.shutdown()

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim and drive every unfinished run until ``stop`` is set, then drain.

        Draining starts nothing new and lets running attempts finish (their
        outcomes are committed) for up to ``shutdown_grace_seconds``; what is
        still running then is cancelled and re-run by the next owner.
        """
        self.serving = True
        self._subscribe()
        try:
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
            self.serving = False
            await self.shutdown()

    async def shutdown(self) -> None:
        """Cancel attempts in flight and give the runs back. Their tasks stay Running
        in the database, so the next owner re-runs them as new attempts."""
        if self._unsubscribe is not None:
            await asyncio.to_thread(self._unsubscribe)
            self._unsubscribe = None
        for task in self._attempts.values():
            task.cancel()
        # Wait for cancelled attempts too: their processes are being killed.
        pending = [*self._attempts.values(), *self._cancelled]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._attempts.clear()
        if self.runs:
            await self._call(self.store.release, self.owner, list(self.runs))
            self.runs.clear()
        self._db.shutdown(wait=True)
        self.executor.close()

    # -- the loop -----------------------------------------------------------------

    def _subscribe(self) -> None:
        """Poll at once when the database reports a new run or a control request."""
        loop = asyncio.get_running_loop()

        def notified() -> None:
            self._next_poll = self.clock()
            self._wake.set()

        def wake() -> None:  # called from the listener's thread
            loop.call_soon_threadsafe(notified)

        self._unsubscribe = self.store.subscribe(wake)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def _wait(self, stop: asyncio.Event | None) -> None:
        if self._done or (stop is not None and stop.is_set()):
            return
        now = self.clock()
        wake_at = min(self._next_poll, self._next_renew)
        if self._timers:
            wake_at = min(wake_at, self._timers[0][0])
        for run in self.runs.values():
            deadline = run.deadline()
            if deadline is not None:
                wake_at = min(wake_at, deadline)
        delay = max(0.0, (wake_at - now).total_seconds())
        if delay <= 0:
            return
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _tick(self, stop: asyncio.Event | None = None) -> None:
        await self._wait(stop)
        now = self.clock()
        try:
            if now >= self._next_poll:
                await self._poll(now)
                now = self.clock()
            if now >= self._next_renew:
                await self._renew(now)
        except StorageError as exc:
            # Nothing was changed in memory: the next poll simply tries again.
            logger.error("database unavailable: %s", exc, extra={"action": "poll"})
        self._collect(now)
        self._fire_timers(now)
        self._enforce_deadlines(now)
        to_start = self._dispatch(now, request=True)
        if self._wants:
            await self._acquire(now)
            to_start += self._dispatch(now, request=False)
            self._return_unused_grants()
        try:
            await self._commit(now)
        except StorageError as exc:
            self._abandon(exc)
            await asyncio.sleep(self.settings.poll_seconds)
            return
        self._after_commit(to_start, now)

    def _abandon(self, exc: StorageError) -> None:
        """The tick's transaction failed, so the database still holds the state before
        it: drop the in-memory state of every run (its attempts are cancelled and will
        run again as new attempts) and adopt the runs afresh from the database."""
        logger.error(
            "database unavailable, re-adopting %d run(s): %s",
            len(self.runs),
            exc,
            extra={"action": "commit"},
        )
        self._reclaim.update(self.runs)
        self._lose(set(self.runs), quiet=True)

    async def _poll(self, now: datetime) -> None:
        """Learn desired-state changes of owned runs, and claim runs to drive."""
        self._next_poll = now + timedelta(seconds=self.settings.poll_seconds)
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
        until = now + timedelta(seconds=self.settings.lease_seconds)
        claimed: list[RunRecord] = []
        for run_id in (self._wanted | self._reclaim) - set(self.runs):
            record = await self._call(self.store.claim_run, run_id, self.owner, now, until)
            self._reclaim.discard(run_id)
            if record is not None:
                claimed.append(record)
        if self.serving:
            claimed += await self._call(
                self.store.claim_runs, self.owner, now, until, self.settings.claim_batch
            )
        for record in claimed:
            tasks = await self._call(self.store.load_tasks, record.id)
            run = RunState(record, tasks, self.clock())
            self.runs[record.id] = run
            for at, name in run.new_timers:
                heapq.heappush(self._timers, (at, record.id, name))
            run.new_timers.clear()
            logger.info(
                "run %s: claimed", record.name, extra={"action": "claim", "run": record.name}
            )

    async def _renew(self, now: datetime) -> None:
        self._next_renew = now + timedelta(seconds=self.settings.lease_seconds / 3)
        if not self.runs:
            return
        until = now + timedelta(seconds=self.settings.lease_seconds)
        kept = await self._call(self.store.renew_leases, self.owner, list(self.runs), until)
        self._lose(set(self.runs) - kept)

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
                task = self._attempts.pop((run_id, name), None)
                if task is not None:
                    self._cancel(task)
                    self._release_slot(run, name)
            self._run_use.pop(run_id, None)

    def _collect(self, now: datetime) -> None:
        done, self._done = self._done, []
        for run_id, name, number, task in done:
            run = self.runs.get(run_id)
            if self._attempts.get((run_id, name)) is task:
                del self._attempts[(run_id, name)]
                if run is not None:
                    self._release_slot(run, name)
            if run is None or task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                outcome = Outcome("failed", error=f"executor error: {type(exc).__name__}: {exc}")
            else:
                outcome = task.result()
            run.complete(name, number, outcome, now)
            self._take_timers(run)

    def _take_timers(self, run: RunState) -> None:
        for at, name in run.new_timers:
            heapq.heappush(self._timers, (at, run.id, name))
        run.new_timers.clear()

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
        """Start what is ready, within slots, parallelism and pools. A pooled task
        starts only with a slot granted by the database; with ``request`` the
        slots it lacks are noted in ``_wants`` for :meth:`_acquire`."""
        to_start: list[Attempt] = []
        if self._draining:
            return to_start
        for run in self.runs.values():
            if not run.dispatching or not run.ready:
                continue
            parallelism = run.record.workflow.spec.parallelism
            blocked: list[str] = []
            while run.ready:
                if not run.dispatching:
                    break
                name = run.ready.popleft()
                task = run.instances[name]
                if task.phase.finished or name in run.running:
                    continue
                if run.expand(task, now):
                    continue
                pool = run.specs[task.task].pool
                if self._in_use >= self.settings.slots or (
                    parallelism is not None and self._run_use.get(run.id, 0) >= parallelism
                ):
                    run.ready.appendleft(name)
                    break
                key = (run.id, name)
                if pool is not None and key not in self._granted:
                    if request:
                        self._want(pool, key, now)
                    blocked.append(name)
                    continue
                self._granted.discard(key)
                attempt = run.start(task, now)
                if attempt is None:
                    if pool is not None:
                        self._slot_releases.append(key)
                    continue
                self._in_use += 1
                self._run_use[run.id] = self._run_use.get(run.id, 0) + 1
                if pool is not None:
                    self._pool_use[pool] = self._pool_use.get(pool, 0) + 1
                to_start.append(attempt)
            run.ready.extendleft(reversed(blocked))
        return to_start

    def _want(self, pool: str, key: tuple[int, str], now: datetime) -> None:
        wants = self._wants.setdefault(pool, [])
        retry_at = self._pool_retry_at.get(pool)
        if retry_at is not None and now < retry_at:
            return  # the pool was full a moment ago: ask again later, not every tick
        if self._pool_use.get(pool, 0) + len(wants) < self._pool_capacity(pool):
            wants.append(key)

    async def _acquire(self, now: datetime) -> None:
        wants, self._wants = self._wants, {}
        for pool, keys in wants.items():
            if not keys:
                continue
            try:
                granted = await self._call(
                    self.store.acquire_slots, self.owner, pool, self._pool_capacity(pool), keys, now
                )
            except StorageError as exc:
                logger.error(
                    "cannot take slots of pool %s: %s", pool, exc, extra={"action": "acquire"}
                )
                granted = []
            self._granted.update(granted)
            if len(granted) < len(keys):
                self._pool_retry_at[pool] = now + timedelta(seconds=self.settings.poll_seconds)

    def _return_unused_grants(self) -> None:
        """Slots granted to tasks that did not start after all (their run paused,
        the engine's slots ran out) go back at the next commit."""
        self._slot_releases.extend(self._granted)
        self._granted.clear()

    def _pool_capacity(self, pool: str) -> int:
        # An undeclared pool gets one slot: safe for the rate-limited APIs pools exist for.
        return self.settings.pools.get(pool, 1)

    def _release_slot(self, run: RunState, name: str) -> None:
        self._in_use -= 1
        self._run_use[run.id] = self._run_use.get(run.id, 1) - 1
        task = run.instances.get(name)
        pool = run.specs[task.task].pool if task is not None else None
        if pool is not None:
            self._pool_use[pool] = self._pool_use.get(pool, 1) - 1
            self._slot_releases.append((run.id, name))
            self._pool_retry_at.pop(pool, None)  # a slot is free: worth asking again

    async def _commit(self, now: datetime) -> None:
        batch = Batch(self.owner, now + timedelta(seconds=self.settings.lease_seconds))
        batch.slot_releases, self._slot_releases = self._slot_releases, []
        for run in self.runs.values():
            runs, inserts, updates, logs = run.take_writes()
            batch.run_updates += runs
            batch.task_inserts += inserts
            batch.task_updates += updates
            batch.logs += logs
            if run.finished and not run.running:
                batch.release.append(run.id)
        if not batch:
            return
        lost = await self._call(self.store.commit, batch)
        if lost:
            self._lose(lost)

    def _after_commit(self, to_start: list[Attempt], now: datetime) -> None:
        for attempt in to_start:
            run = self.runs.get(attempt.run_id)
            if run is None:
                continue
            self._start(attempt)
        for run in list(self.runs.values()):
            for name in run.to_cancel:
                task = self._attempts.pop((run.id, name), None)
                if task is not None:
                    self._cancel(task)
                    self._release_slot(run, name)
            run.to_cancel.clear()
            if run.events:
                self._emit(run, now)
            self._take_timers(run)
            if run.finished and not run.running:
                logger.info(
                    "run %s: %s",
                    run.record.name,
                    run.record.phase.value,
                    extra={"action": "finish", "run": run.record.name},
                )
                del self.runs[run.id]
                self._run_use.pop(run.id, None)

    def _cancel(self, task: asyncio.Task[Outcome]) -> None:
        task.cancel()
        self._cancelled.add(task)
        task.add_done_callback(self._cancelled.discard)

    def _start(self, attempt: Attempt) -> None:
        key = (attempt.run_id, attempt.task)
        task = asyncio.create_task(self.executor.execute(attempt), name=f"tideflow:{attempt.task}")
        self._attempts[key] = task
        number = attempt.number

        def done(t: asyncio.Task[Outcome]) -> None:
            self._done.append((key[0], key[1], number, t))
            self._wake.set()

        task.add_done_callback(done)

    def _emit(self, run: RunState, now: datetime) -> None:
        events, run.events = run.events, []
        if not self.listeners:
            return
        counts = run.counts()
        for kind, task in events:
            event = Event(kind, run.record.name, run.id, task, now, counts)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:
                    logger.exception("event listener failed", extra={"action": "emit"})
