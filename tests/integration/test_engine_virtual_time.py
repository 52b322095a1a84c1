"""The engine on virtual time: ``MemoryStore`` and an injected clock, no sleeping.

What these tests check (an hour of retry backoff, an hour of run timeout)
happens when the test moves the clock, not after an hour of waiting. The
engine's loop still waits for real, but never longer than ``poll_seconds``, so
a small one keeps it re-reading the clock often.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.enginekit import engine, until, workflow
from tideflow.engine import control
from tideflow.engine.reconciler import EngineSettings
from tideflow.model import RunPhase, TaskPhase
from tideflow.testing import MemoryStore

T = "tests.integration.tasks"
T0 = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: Virtual seconds; the loop waits at most this long for real between ticks.
VIRTUAL = EngineSettings(poll_seconds=0.02, lease_seconds=5)


class FakeClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


async def test_a_retry_backoff_of_an_hour_fires_when_the_clock_reaches_it(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    wf = workflow(
        {
            "name": "flaky",
            "function": f"{T}:flaky",
            "args": {"marker": str(tmp_path / "done"), "fail_times": 1},
            "retry": {"limit": 1, "backoff": {"seconds": 3600, "maxSeconds": 3600}},
        }
    )
    run = control.submit_run(store, wf, now=clock())
    started = time.monotonic()
    driving = asyncio.create_task(engine(store, VIRTUAL, clock=clock).drive(run.id))
    try:

        def flaky() -> tuple[TaskPhase, int]:
            (task,) = store.list_tasks(run.id)
            return task.phase, task.attempt

        await until(lambda: flaky() == (TaskPhase.RETRYING, 1), timeout=10)
        (task,) = store.list_tasks(run.id)
        assert task.not_before == T0 + HOUR  # the first attempt failed at T0
        assert "transient failure 1" in (task.error or "")

        # Many ticks pass in real time, but not a second of virtual time: no retry.
        await asyncio.sleep(0.3)
        assert flaky() == (TaskPhase.RETRYING, 1)
        clock.advance(HOUR - timedelta(seconds=1))
        await asyncio.sleep(0.3)
        assert flaky() == (TaskPhase.RETRYING, 1)

        clock.advance(timedelta(seconds=1))  # T0 + 1h: the backoff is over
        final = await asyncio.wait_for(driving, timeout=10)
    finally:
        driving.cancel()
    assert final.phase is RunPhase.SUCCEEDED
    (task,) = store.list_tasks(run.id)
    assert (task.phase, task.attempt, task.output) == (TaskPhase.SUCCEEDED, 2, 2)
    assert task.started_at == T0 + HOUR  # the second attempt started at the virtual hour
    assert (tmp_path / "done").read_text() == "2"
    assert time.monotonic() - started < 10  # an hour of backoff, seconds of real time


async def test_a_run_timeout_of_an_hour_fails_the_run_at_the_virtual_hour() -> None:
    clock = FakeClock(T0)
    store = MemoryStore(clock=clock)
    wf = workflow(
        {"name": "slow", "function": f"{T}:async_sleep", "args": {"seconds": 60}},
        timeoutSeconds=3600,
    )
    run = control.submit_run(store, wf, now=clock())
    started = time.monotonic()
    driving = asyncio.create_task(engine(store, VIRTUAL, clock=clock).drive(run.id))
    try:

        def slow() -> TaskPhase:
            (task,) = store.list_tasks(run.id)
            return task.phase

        await until(lambda: slow() is TaskPhase.RUNNING, timeout=10)
        clock.advance(HOUR - timedelta(microseconds=1))
        await asyncio.sleep(0.3)
        assert store.get_run_by_id(run.id).phase is RunPhase.RUNNING
        assert slow() is TaskPhase.RUNNING

        clock.advance(timedelta(microseconds=1))  # the deadline: started_at + 3600 s
        final = await asyncio.wait_for(driving, timeout=10)
    finally:
        driving.cancel()
    assert final.phase is RunPhase.FAILED
    assert final.message == "the run exceeded its timeout of 3600s"
    assert final.finished_at == T0 + HOUR
    (task,) = store.list_tasks(run.id)
    assert task.phase is TaskPhase.TERMINATED  # its coroutine was cancelled, not awaited
    assert time.monotonic() - started < 10
