"""What may start: the engine's slots, each run's parallelism, and pool slots.

:class:`Admission` picks the ready tasks of the engine's runs that may start
now. A pool's slots are rows in the database shared by every engine
(:meth:`Store.acquire_slots <tideflow.engine.ports.Store.acquire_slots>`),
counted against the capacity stored with the pool, so every engine on the
database agrees on it: the reconciler asks the database for the slots its
ready pooled tasks lack once per tick, starts the tasks it was granted slots
for, and gives slots back in its next commit; :class:`PoolSlots` is that
bookkeeping. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from tideflow.engine.execution import Attempt
from tideflow.engine.runstate import RunState

#: A pooled task instance: (run id, instance name).
Key = tuple[int, str]


class PoolSlots:
    """The pool slots of one engine."""

    def __init__(self, capacities: dict[str, int], retry_seconds: float) -> None:
        """Args:
        capacities: Pool name -> capacity from the engine's settings. They are
            not used to grant slots (the database's stored capacity is the
            one truth): the engine publishes them to the database when it
            starts (see :attr:`unpublished`).
        retry_seconds: After the database refused slots of a pool, how long to
            wait before asking again (asking every tick would only load it).
        """
        #: Capacities from the settings still to write to the database.
        self.unpublished = dict(capacities)
        self._retry = timedelta(seconds=retry_seconds)
        #: Slots to ask the database for this tick, per pool.
        self.wants: dict[str, list[Key]] = {}
        #: Slots granted to tasks that have not started yet.
        self._granted: set[Key] = set()
        #: Slots to give back in the next commit.
        self._releases: list[Key] = []
        #: When to ask for a pool's slots again after a refusal.
        self._retry_at: dict[str, datetime] = {}

    def is_granted(self, key: Key) -> bool:
        return key in self._granted

    def want(self, pool: str, key: Key, now: datetime) -> bool:
        """Note that ``key`` needs a slot of ``pool``, unless asking is pointless now
        (the database refused slots of the pool a moment ago, and none of this
        engine's has been freed since). Returns whether it was noted."""
        retry_at = self._retry_at.get(pool)
        if retry_at is not None and now < retry_at:
            return False  # the pool was full a moment ago: ask again later, not every tick
        self.wants.setdefault(pool, []).append(key)
        return True

    def take_wants(self) -> dict[str, list[Key]]:
        wants, self.wants = self.wants, {}
        return wants

    def answered(self, pool: str, asked: list[Key], granted: list[Key], now: datetime) -> None:
        """Record the database's answer to a request for slots of ``pool``: a
        refusal (fewer granted than asked) means the pool is full for now."""
        self._granted.update(granted)
        if len(granted) < len(asked):
            self._retry_at[pool] = now + self._retry

    def hold(self, key: Key) -> None:
        """The task granted ``key``'s slot started: the slot is in use."""
        self._granted.discard(key)

    def give_back(self, key: Key) -> None:
        """A task granted a slot will not start (its inputs failed to render)."""
        self._granted.discard(key)
        self._releases.append(key)

    def return_unused_grants(self) -> None:
        """Slots granted to tasks that did not start after all (their run paused,
        the engine's slots ran out) go back at the next commit."""
        self._releases.extend(self._granted)
        self._granted.clear()

    def release(self, pool: str, key: Key) -> None:
        """The attempt holding ``key``'s slot ended."""
        self._releases.append(key)
        self._retry_at.pop(pool, None)  # a slot is free: worth asking again

    def take_releases(self) -> list[Key]:
        releases, self._releases = self._releases, []
        return releases


class Admission:
    """Starts ready tasks within the engine's slots, run parallelism and pools."""

    def __init__(self, slots: int, pools: PoolSlots) -> None:
        self.slots = slots
        self.pools = pools
        #: Attempts in flight on this engine, in total and per run.
        self.in_use = 0
        self._run_use: dict[int, int] = {}

    def dispatch(self, runs: Iterable[RunState], now: datetime, *, request: bool) -> list[Attempt]:
        """Start what is ready (in memory: the attempts are returned to run after the
        commit). A pooled task starts only with a slot granted by the database;
        with ``request`` the slots it lacks are noted in ``pools.wants``."""
        to_start: list[Attempt] = []
        # Slots asked for: no more than this engine could start at once.
        asked = 0
        for run in runs:
            if not run.has_ready:
                continue
            parallelism = run.record.workflow.spec.parallelism
            # A task not started here stays ready in its place (see RunState.ready_tasks).
            for task in run.ready_tasks(now):
                if self.in_use >= self.slots or (
                    parallelism is not None and self._run_use.get(run.id, 0) >= parallelism
                ):
                    break
                pool = run.specs[task.task].pool
                key = (run.id, task.name)
                if pool is not None and not self.pools.is_granted(key):
                    if (
                        request
                        and self.in_use + asked < self.slots
                        and self.pools.want(pool, key, now)
                    ):
                        asked += 1
                    continue
                attempt = run.start(task, now)
                if attempt is None:
                    if pool is not None:
                        self.pools.give_back(key)
                    continue
                self.in_use += 1
                self._run_use[run.id] = self._run_use.get(run.id, 0) + 1
                if pool is not None:
                    self.pools.hold(key)
                to_start.append(attempt)
        return to_start

    def release(self, run: RunState, name: str) -> None:
        """The attempt of ``name`` ended (or will not start): its slots are free."""
        self.in_use -= 1
        self._run_use[run.id] = self._run_use.get(run.id, 1) - 1
        task = run.instances.get(name)
        pool = run.specs[task.task].pool if task is not None else None
        if pool is not None:
            self.pools.release(pool, (run.id, name))

    def forget(self, run_id: int) -> None:
        """The run is no longer this engine's."""
        self._run_use.pop(run_id, None)

    def adopt(self, run: RunState, name: str) -> None:
        """An attempt of ``name`` that a previous owner of the run started goes on
        here (the executor reattached to it): it counts like a started attempt
        until :meth:`release`. It is running already, so it is never refused,
        even if that puts the engine or the run over its limit for a while."""
        self.in_use += 1
        self._run_use[run.id] = self._run_use.get(run.id, 0) + 1
