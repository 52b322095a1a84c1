"""Pools are shared by every engine on the database, and cannot leak.

Every test runs on ``MemoryStore`` and on ``SqlStore`` with SQLite, PostgreSQL
and MariaDB (see ``any_store`` in ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from tests.integration.enginekit import engine, workflow
from tests.integration.enginekit import until as eventually
from tideflow.engine import control
from tideflow.engine.ports import Batch, PoolRecord, Store, utcnow
from tideflow.engine.reconciler import EngineSettings
from tideflow.errors import ValidationError
from tideflow.model import RunPhase, TaskPhase, Workflow

T = "tests.integration.tasks"
#: An engine whose settings declare no pool: it stores no capacity.
POOLED_UNDECLARED = EngineSettings(poll_seconds=0.05, lease_seconds=5)


@pytest.fixture
def store(any_store: Store) -> Store:
    """These tests are about the ``Store`` contract: they run on ``MemoryStore`` too."""
    return any_store


def _pooled(n: int, seconds: float) -> Workflow:
    return workflow(
        *(
            {
                "name": f"t{i}",
                "function": f"{T}:track",
                "args": {"seconds": seconds},
                "pool": "vendor-api",
            }
            for i in range(n)
        )
    )


def _capacity(store: Store, pool: str = "vendor-api") -> int | None:
    return next((p.capacity for p in store.list_pools() if p.name == pool), None)


def _configured(capacity: int) -> EngineSettings:
    return EngineSettings(poll_seconds=0.05, lease_seconds=5, pools={"vendor-api": capacity})


async def test_two_engines_configured_differently_count_against_the_stored_capacity(
    store: Store,
) -> None:
    from tests.integration import tasks as module

    stop = asyncio.Event()
    big = engine(store, _configured(5), owner="engine-big")
    small = engine(store, _configured(1), owner="engine-small")
    serving = [asyncio.create_task(big.serve(stop))]
    # Each engine stores the capacity of its settings when it starts: the last one wins.
    await eventually(lambda: _capacity(store) == 5)
    serving.append(asyncio.create_task(small.serve(stop)))
    await eventually(lambda: _capacity(store) == 1)
    try:
        # Then `tideflow pool set vendor-api 2`: neither engine's own number counts.
        store.set_pool_capacity("vendor-api", 2)
        module.peak = 0
        runs = [control.submit_run(store, _pooled(8, 0.1)) for _ in range(2)]
        await eventually(lambda: all(store.get_run_by_id(r.id).phase.finished for r in runs))
        assert [store.get_run_by_id(r.id).phase for r in runs] == [RunPhase.SUCCEEDED] * 2
        # Both engines ran pooled tasks in this process, so the peak is the pool's.
        assert module.peak == 2
    finally:
        stop.set()
        await asyncio.gather(*serving)


async def test_pool_set_changes_the_capacity_of_a_running_server(store: Store) -> None:
    from tests.integration import tasks as module

    module.peak = 0
    store.set_pool_capacity("vendor-api", 1)
    stop = asyncio.Event()
    serving = asyncio.create_task(engine(store, POOLED_UNDECLARED).serve(stop))
    try:
        run = control.submit_run(store, _pooled(12, 0.2))

        def succeeded() -> int:
            return sum(t.phase is TaskPhase.SUCCEEDED for t in store.list_tasks(run.id))

        await eventually(lambda: succeeded() >= 2)
        assert module.peak == 1
        in_use = {p.name: p.in_use for p in store.list_pools()}
        assert in_use["vendor-api"] <= 1
        store.set_pool_capacity("vendor-api", 3)  # what `tideflow pool set vendor-api 3` does
        seen: set[int] = set()

        def finished() -> bool:
            seen.update(p.in_use for p in store.list_pools())
            return store.get_run_by_id(run.id).phase.finished

        await eventually(finished)
        assert store.get_run_by_id(run.id).phase is RunPhase.SUCCEEDED
        assert module.peak == 3
        assert max(seen) <= 3
        assert store.list_pools() == [PoolRecord("vendor-api", 3, 0)]
    finally:
        stop.set()
        await serving


def _run_ids(store: Store, make_run, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    return [make_run(f"run-{i}").id for i in range(n)]


def test_a_slot_counts_only_while_its_owner_owns_the_run(store: Store, make_run) -> None:  # type: ignore[no-untyped-def]
    first, second = _run_ids(store, make_run, 2)
    now = utcnow()
    until = now + timedelta(seconds=30)
    assert store.claim_run(first, "engine-a", now, until) is not None
    assert store.acquire_slots("engine-a", "vendor-api", [(first, "t0")], now) == [(first, "t0")]
    assert store.claim_run(second, "engine-b", now, until) is not None
    # The pool is full: engine B waits.
    assert store.acquire_slots("engine-b", "vendor-api", [(second, "t0")], now) == []
    # Engine A dies; once its lease has expired engine B adopts the run, and A's slot is free.
    later = until + timedelta(seconds=1)
    assert store.claim_run(first, "engine-b", later, later + timedelta(seconds=30)) is not None
    assert store.acquire_slots("engine-b", "vendor-api", [(second, "t0")], later) == [
        (second, "t0")
    ]


def test_released_slots_are_free_again(store: Store, make_run) -> None:  # type: ignore[no-untyped-def]
    (run_id,) = _run_ids(store, make_run, 1)
    now = utcnow()
    store.claim_run(run_id, "engine-a", now, now + timedelta(seconds=30))
    wanted = [(run_id, f"t{i}") for i in range(3)]
    store.set_pool_capacity("p", 2)
    assert store.acquire_slots("engine-a", "p", wanted, now) == wanted[:2]
    store.commit(Batch("engine-a", now + timedelta(seconds=30), slot_releases=[wanted[0]]))
    assert store.acquire_slots("engine-a", "p", wanted[2:], now) == wanted[2:]
    assert store.acquire_slots("engine-a", "p", [(run_id, "t9")], now) == []


def test_pools_list_their_stored_capacity_and_live_holdings(store: Store, make_run) -> None:  # type: ignore[no-untyped-def]
    first, second = _run_ids(store, make_run, 2)
    now = utcnow()
    for run_id in (first, second):
        store.claim_run(run_id, "engine-a", now, now + timedelta(seconds=30))
    assert store.list_pools() == []
    store.set_pool_capacity("vendor-api", 3)
    # A pool first named by a pooled task, whose capacity was never set, has one slot.
    assert store.acquire_slots("engine-a", "adhoc", [(first, "a"), (first, "b")], now) == [
        (first, "a")
    ]
    granted = [(first, "t0"), (second, "t0")]
    assert store.acquire_slots("engine-a", "vendor-api", granted, now) == granted
    assert store.list_pools() == [PoolRecord("adhoc", 1, 1), PoolRecord("vendor-api", 3, 2)]
    # A holding of a run its engine no longer owns does not count.
    store.release("engine-a", [second])
    assert store.list_pools() == [PoolRecord("adhoc", 1, 1), PoolRecord("vendor-api", 3, 1)]


def test_a_lowered_capacity_grants_nothing_until_holdings_fall_below_it(  # type: ignore[no-untyped-def]
    store: Store, make_run
) -> None:
    (run_id,) = _run_ids(store, make_run, 1)
    now = utcnow()
    store.claim_run(run_id, "engine-a", now, now + timedelta(seconds=30))
    store.set_pool_capacity("p", 3)
    held = [(run_id, f"t{i}") for i in range(3)]
    assert store.acquire_slots("engine-a", "p", held, now) == held
    store.set_pool_capacity("p", 1)
    assert store.list_pools() == [PoolRecord("p", 1, 3)]
    store.commit(Batch("engine-a", now + timedelta(seconds=30), slot_releases=held[:2]))
    assert store.acquire_slots("engine-a", "p", [(run_id, "t9")], now) == []
    store.commit(Batch("engine-a", now + timedelta(seconds=30), slot_releases=held[2:]))
    assert store.acquire_slots("engine-a", "p", [(run_id, "t9")], now) == [(run_id, "t9")]


@pytest.mark.parametrize(
    ("pool", "capacity", "message"),
    [("p", 0, "capacity must be greater than 0"), ("Bad_Pool", 2, "invalid name 'Bad_Pool'")],
)
def test_a_bad_pool_capacity_is_refused(
    store: Store, pool: str, capacity: int, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        store.set_pool_capacity(pool, capacity)
    assert store.list_pools() == []
