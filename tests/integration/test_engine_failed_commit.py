"""A commit that fails drops the tick's effects but frees what the tick took."""

from __future__ import annotations

import asyncio

from tests.integration.enginekit import engine, workflow
from tideflow.engine import control
from tideflow.engine.ports import Batch
from tideflow.engine.reconciler import EngineSettings
from tideflow.errors import StorageError
from tideflow.model import RunPhase, TaskPhase
from tideflow.testing import MemoryStore

T = "tests.integration.tasks"


class _FailsOnceStarting(MemoryStore):
    """Fails the first commit that starts an attempt, as a dropped connection would."""

    failed = False

    def commit(self, batch: Batch) -> set[int]:
        starting = any(t.phase is TaskPhase.RUNNING for t in batch.task_updates)
        if starting and not self.failed:
            self.failed = True
            raise StorageError("connection lost")
        return super().commit(batch)


async def test_the_slot_of_an_attempt_whose_start_was_not_committed_is_freed() -> None:
    # One engine slot: had the attempt that never started kept it, nothing could
    # start again once the run was adopted afresh, and the run would never end.
    store = _FailsOnceStarting()
    run = control.submit_run(
        store, workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}})
    )
    settings = EngineSettings(poll_seconds=0.02, lease_seconds=5, slots=1)
    final = await asyncio.wait_for(engine(store, settings).drive(run.id), timeout=10)
    assert store.failed
    assert final.phase is RunPhase.SUCCEEDED
    [task] = store.list_tasks(run.id)
    assert (task.phase, task.attempt, task.output) == (TaskPhase.SUCCEEDED, 1, 1)
