"""Stopping an engine hands its runs back at once: nothing lost, nothing waits for a lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.enginekit import alive, engine, until, workflow
from tideflow.engine import control
from tideflow.engine.reconciler import Ending, EngineSettings
from tideflow.model import RunPhase, TaskPhase
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"


def _long(ledger: Path, pid_file: Path, *, then: str = "") -> list[str]:
    """A command that appends ``long ATTEMPT`` to ``ledger``; its first attempt runs
    until killed, with a child process whose pid goes to ``pid_file``; later
    attempts run ``then`` (a shell command) and end."""
    script = (
        f'echo "long $TIDEFLOW_ATTEMPT" >> {ledger}; '
        f'if [ "$TIDEFLOW_ATTEMPT" = 1 ]; then sleep 60 & echo $! > {pid_file}; wait; fi; '
        f"{then or 'true'}"
    )
    return ["sh", "-c", script]


def _started(pid_file: Path) -> bool:
    return pid_file.exists() and pid_file.read_text().strip() != ""


def _ledger(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_stopping_a_driven_run_hands_it_back_and_the_next_engine_finishes_it(
    store: SqlStore, tmp_path: Path
) -> None:
    ledger, pid_file = tmp_path / "ledger", tmp_path / "pid"
    wf = workflow(
        {
            "name": "first",
            "function": f"{T}:append",
            "args": {"path": str(ledger), "name": "first"},
        },
        {"name": "long", "command": _long(ledger, pid_file), "dependsOn": ["first"]},
        {
            "name": "after",
            "function": f"{T}:append",
            "dependsOn": ["long"],
            "args": {"path": str(ledger), "name": "after"},
        },
    )
    run = control.submit_run(store, wf)
    stop = asyncio.Event()
    driving = asyncio.create_task(engine(store, owner="engine-a").drive_until(run.id, stop))
    await until(lambda: _started(pid_file))
    stop.set()
    driven = await asyncio.wait_for(driving, 20)

    assert driven.ending is Ending.HANDED_BACK
    # Given back at once, not when the lease expires.
    record = store.get_run_by_id(run.id)
    assert (record.owner, record.lease_expires_at, record.phase) == (None, None, RunPhase.RUNNING)
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["first"].phase, tasks["first"].attempt) == (TaskPhase.SUCCEEDED, 1)
    # The interrupted task is not Failed: it waits for its next attempt.
    assert (tasks["long"].phase, tasks["long"].attempt) == (TaskPhase.QUEUED, 1)
    assert tasks["long"].error is None
    assert tasks["after"].phase is TaskPhase.PENDING
    child = int(pid_file.read_text())
    await until(lambda: not alive(child), timeout=10)  # SIGTERM, SIGKILL after 3 s
    lines = [log for log in store.get_logs(run.id, "long") if log.stream == "log"]
    assert [(log.attempt, log.text) for log in lines] == [
        (
            1,
            "attempt 1 was interrupted: its engine handed the run back; "
            "it runs again as a new attempt\n",
        )
    ]

    final = await asyncio.wait_for(engine(store, owner="engine-b").drive(run.id), 20)
    assert final.phase is RunPhase.SUCCEEDED
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert {name: t.attempt for name, t in tasks.items()} == {"first": 1, "long": 2, "after": 1}
    # What had finished did not run again; the interrupted task ran once more.
    assert _ledger(ledger) == ["first 1", "long 1", "long 2", "after 1"]


async def test_an_interrupted_attempt_does_not_count_against_the_retry_limit(
    store: SqlStore, tmp_path: Path
) -> None:
    ledger, pid_file = tmp_path / "ledger", tmp_path / "pid"
    # Attempt 1 is interrupted, attempt 2 fails, attempt 3 succeeds: with a
    # limit of one retry, that works only if the interruption was not counted.
    then = '[ "$TIDEFLOW_ATTEMPT" != 2 ] || { echo broken >&2; exit 3; }'
    wf = workflow(
        {
            "name": "long",
            "command": _long(ledger, pid_file, then=then),
            "retry": {"limit": 1, "backoff": {"seconds": 0.01}},
        }
    )
    run = control.submit_run(store, wf)
    stop = asyncio.Event()
    driving = asyncio.create_task(engine(store).drive_until(run.id, stop))
    await until(lambda: _started(pid_file))
    stop.set()
    assert (await asyncio.wait_for(driving, 20)).ending is Ending.HANDED_BACK

    final = await asyncio.wait_for(engine(store).drive(run.id), 20)
    (task,) = store.list_tasks(run.id)
    assert final.phase is RunPhase.SUCCEEDED, task.error
    assert task.attempt == 3
    assert _ledger(ledger) == ["long 1", "long 2", "long 3"]


async def test_stopping_a_follower_leaves_the_run_to_the_engine_that_owns_it(
    store: SqlStore,
) -> None:
    wf = workflow({"name": "slow", "function": f"{T}:async_sleep", "args": {"seconds": 1}})
    run = control.submit_run(store, wf)
    owner = asyncio.create_task(engine(store, owner="engine-a").drive(run.id))
    await until(lambda: store.get_run_by_id(run.id).owner == "engine-a")
    stop = asyncio.Event()
    following = asyncio.create_task(engine(store, owner="engine-b").drive_until(run.id, stop))
    await asyncio.sleep(0.2)
    stop.set()
    driven = await asyncio.wait_for(following, 10)
    assert driven.ending is Ending.STOPPED_FOLLOWING
    assert driven.record.owner == "engine-a"
    assert not owner.done()
    final = await asyncio.wait_for(owner, 20)
    assert final.phase is RunPhase.SUCCEEDED
    assert [t.attempt for t in store.list_tasks(run.id)] == [1]


async def test_a_server_hands_back_what_did_not_finish_within_its_grace(
    store: SqlStore, tmp_path: Path
) -> None:
    ledger, pid_file = tmp_path / "ledger", tmp_path / "pid"
    run = control.submit_run(store, workflow({"name": "long", "command": _long(ledger, pid_file)}))
    settings = EngineSettings(poll_seconds=0.05, lease_seconds=5, shutdown_grace_seconds=0.2)
    stop = asyncio.Event()
    serving = asyncio.create_task(engine(store, settings).serve(stop))
    await until(lambda: _started(pid_file))
    stop.set()
    await asyncio.wait_for(serving, 20)

    record = store.get_run_by_id(run.id)
    assert (record.owner, record.phase) == (None, RunPhase.RUNNING)
    (task,) = store.list_tasks(run.id)
    assert (task.phase, task.attempt) == (TaskPhase.QUEUED, 1)
    child = int(pid_file.read_text())
    await until(lambda: not alive(child), timeout=10)  # SIGTERM, SIGKILL after 3 s
    final = await asyncio.wait_for(engine(store).drive(run.id), 20)
    assert final.phase is RunPhase.SUCCEEDED
    assert _ledger(ledger) == ["long 1", "long 2"]


async def test_stopping_before_the_run_is_claimed_touches_nothing(store: SqlStore) -> None:
    run = control.submit_run(
        store, workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}})
    )
    stop = asyncio.Event()
    stop.set()
    driven = await engine(store).drive_until(run.id, stop)
    assert driven.ending is Ending.STOPPED_FOLLOWING
    assert (driven.record.phase, driven.record.owner) == (RunPhase.PENDING, None)
