"""Pools are shared by every engine on the database, and cannot leak."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.integration.enginekit import engine, workflow
from tideflow.engine import control
from tideflow.engine.ports import Batch, utcnow
from tideflow.engine.reconciler import EngineSettings
from tideflow.model import RunPhase
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"
POOLED = EngineSettings(poll_seconds=0.05, lease_seconds=5, pools={"vendor-api": 2})


async def test_two_engines_together_respect_a_pool_capacity(store: SqlStore) -> None:
    from tests.integration import tasks as module

    module.peak = 0
    wf = workflow(
        *(
            {
                "name": f"t{i}",
                "function": f"{T}:track",
                "args": {"seconds": 0.1},
                "pool": "vendor-api",
            }
            for i in range(8)
        )
    )
    runs = [control.submit_run(store, wf) for _ in range(2)]
    engines = [engine(store, POOLED, owner=f"engine-{i}") for i in range(2)]
    finals = await asyncio.gather(*(e.drive(r.id) for e, r in zip(engines, runs, strict=True)))
    assert [f.phase for f in finals] == [RunPhase.SUCCEEDED] * 2
    # Both engines ran pooled tasks in this process, so the peak is the pool's, not 2 x 2.
    assert module.peak == 2


def _run_ids(store: SqlStore, make_run, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    return [make_run(f"run-{i}").id for i in range(n)]


def test_a_slot_counts_only_while_its_owner_owns_the_run(store: SqlStore, make_run) -> None:  # type: ignore[no-untyped-def]
    first, second = _run_ids(store, make_run, 2)
    now = utcnow()
    until = now + timedelta(seconds=30)
    assert store.claim_run(first, "engine-a", now, until) is not None
    assert store.acquire_slots("engine-a", "vendor-api", 1, [(first, "t0")], now) == [(first, "t0")]
    assert store.claim_run(second, "engine-b", now, until) is not None
    # The pool is full: engine B waits.
    assert store.acquire_slots("engine-b", "vendor-api", 1, [(second, "t0")], now) == []
    # Engine A dies; once its lease has expired engine B adopts the run, and A's slot is free.
    later = until + timedelta(seconds=1)
    assert store.claim_run(first, "engine-b", later, later + timedelta(seconds=30)) is not None
    assert store.acquire_slots("engine-b", "vendor-api", 1, [(second, "t0")], later) == [
        (second, "t0")
    ]


def test_released_slots_are_free_again(store: SqlStore, make_run) -> None:  # type: ignore[no-untyped-def]
    (run_id,) = _run_ids(store, make_run, 1)
    now = utcnow()
    store.claim_run(run_id, "engine-a", now, now + timedelta(seconds=30))
    wanted = [(run_id, f"t{i}") for i in range(3)]
    assert store.acquire_slots("engine-a", "p", 2, wanted, now) == wanted[:2]
    store.commit(Batch("engine-a", now + timedelta(seconds=30), slot_releases=[wanted[0]]))
    assert store.acquire_slots("engine-a", "p", 2, wanted[2:], now) == wanted[2:]
    assert store.acquire_slots("engine-a", "p", 2, [(run_id, "t9")], now) == []
