"""Run control on a live engine: pause, resume, terminate, retry, run deadlines, leases."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest

from tests.integration.enginekit import FAST, alive, engine, execute, until, workflow
from tideflow.engine import control
from tideflow.engine.ports import Batch, utcnow
from tideflow.engine.reconciler import EngineSettings
from tideflow.errors import InvalidTransitionError, StorageError
from tideflow.model import DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.storage.database import create_engine_for
from tideflow.storage.migrating import upgrade
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"


def phases(store: SqlStore, run_id: int) -> dict[str, TaskPhase]:
    return {t.name: t.phase for t in store.list_tasks(run_id)}


async def test_pause_lets_running_tasks_finish_and_starts_nothing_new(store: SqlStore) -> None:
    wf = workflow(
        {"name": "first", "function": f"{T}:async_sleep", "args": {"seconds": 0.5}},
        {"name": "second", "function": f"{T}:echo", "dependsOn": ["first"], "args": {"value": 2}},
    )
    run = control.submit_run(store, wf)
    driving = asyncio.create_task(engine(store).drive(run.id))
    await until(lambda: phases(store, run.id)["first"] is TaskPhase.RUNNING)
    await asyncio.to_thread(control.request, store, "default", run.name, "pause")
    await until(lambda: phases(store, run.id)["first"] is TaskPhase.SUCCEEDED)
    await asyncio.sleep(0.3)
    assert store.get_run_by_id(run.id).phase is RunPhase.PAUSED
    assert phases(store, run.id)["second"] is TaskPhase.PENDING

    assert not driving.done()
    await asyncio.to_thread(control.request, store, "default", run.name, "resume")
    final = await asyncio.wait_for(driving, 20)
    assert final.phase is RunPhase.SUCCEEDED
    assert phases(store, run.id)["second"] is TaskPhase.SUCCEEDED


async def test_terminate_kills_running_commands_and_ends_the_run(
    store: SqlStore, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    wf = workflow(
        # The shell starts a child; terminate must kill the whole process group.
        {"name": "long", "command": ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]},
        {"name": "after", "function": f"{T}:echo", "dependsOn": ["long"], "args": {"value": 1}},
    )
    run = control.submit_run(store, wf)
    driving = asyncio.create_task(engine(store).drive(run.id))
    await until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    await asyncio.to_thread(control.request, store, "default", run.name, "terminate")
    final = await asyncio.wait_for(driving, 20)
    assert final.phase is RunPhase.TERMINATED
    assert phases(store, run.id) == {"long": TaskPhase.TERMINATED, "after": TaskPhase.TERMINATED}
    child = int(pid_file.read_text())
    await until(lambda: not alive(child), timeout=10)


async def test_terminating_a_pending_run_never_starts_it(store: SqlStore) -> None:
    wf = workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}})
    run = control.submit_run(store, wf)
    control.request(store, "default", run.name, "terminate")
    final = await engine(store).drive(run.id)
    assert final.phase is RunPhase.TERMINATED
    assert phases(store, run.id) == {"a": TaskPhase.TERMINATED}


async def test_retry_reruns_only_what_failed_and_keeps_succeeded_outputs(
    store: SqlStore, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    wf = workflow(
        {"name": "ok", "function": f"{T}:symbols", "args": {"n": 3}},
        {
            "name": "each",
            "function": f"{T}:price",
            "dependsOn": ["ok"],
            "forEach": "{{ tasks['ok'].output }}",
            "args": {"symbol": "{{ item }}"},
        },
        {
            "name": "fragile",
            "function": f"{T}:fail_once_per_file",
            "dependsOn": ["ok"],
            "args": {"marker": str(marker)},
        },
        {
            "name": "report",
            "function": f"{T}:echo",
            "dependsOn": ["each", "fragile"],
            "args": {"value": "{{ tasks['fragile'].output }}"},
        },
    )
    first, tasks = await execute(store, wf)
    assert first.phase is RunPhase.FAILED
    assert tasks["report"].phase is TaskPhase.UPSTREAM_FAILED
    before = {name: (t.attempt, t.output, t.finished_at) for name, t in tasks.items()}

    marker.write_text("yes")
    control.request(store, "default", first.name, "retry")
    again = store.get_run_by_id(first.id)
    assert (again.phase, again.desired_state) == (RunPhase.PENDING, DesiredState.RUNNING)
    final = await engine(store).drive(first.id)
    assert final.phase is RunPhase.SUCCEEDED
    after = {t.name: t for t in store.list_tasks(first.id)}
    for name in ("ok", "each", "each[0]", "each[1]", "each[2]"):
        assert (after[name].attempt, after[name].output, after[name].finished_at) == before[name]
    assert (after["fragile"].attempt, after["fragile"].output) == (2, "fixed")
    assert after["report"].output == "fixed"


async def test_control_of_a_finished_run_is_refused_with_the_reason(store: SqlStore) -> None:
    run, _ = await execute(
        store, workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}})
    )
    with pytest.raises(
        InvalidTransitionError, match=r"cannot resume: the run already finished \(Succeeded\)"
    ):
        control.request(store, "default", run.name, "resume")
    with pytest.raises(InvalidTransitionError, match="only a Failed or Terminated run"):
        control.request(store, "default", run.name, "retry")


async def test_a_run_past_its_deadline_fails_and_stops_its_tasks(store: SqlStore) -> None:
    wf = workflow(
        {"name": "slow", "function": f"{T}:async_sleep", "args": {"seconds": 30}},
        timeoutSeconds=0.5,
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert run.message == "the run exceeded its timeout of 0.5s"
    assert tasks["slow"].phase is TaskPhase.TERMINATED


async def test_an_engine_that_lost_its_lease_stops_touching_the_run(store: SqlStore) -> None:
    wf = workflow({"name": "slow", "function": f"{T}:async_sleep", "args": {"seconds": 1}})
    run = control.submit_run(store, wf)
    first = engine(store, owner="engine-a")
    driving = asyncio.create_task(first.drive(run.id))
    await until(lambda: phases(store, run.id)["slow"] is TaskPhase.RUNNING)
    # Engine B takes over after A's lease expired (simulated by claiming "in the future").
    later = utcnow() + timedelta(seconds=FAST.lease_seconds + 1)
    assert store.claim_run(run.id, "engine-b", later, later + timedelta(seconds=30)) is not None
    assert store.commit(Batch("engine-a", later)) == set()  # an empty batch touches nothing
    await until(lambda: run.id not in first.runs, timeout=20)
    driving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driving
    record = store.get_run_by_id(run.id)
    assert record.owner == "engine-b"
    # Engine A wrote nothing after losing the run: the task is still Running attempt 1.
    assert phases(store, run.id)["slow"] is TaskPhase.RUNNING


class FlakyStore(SqlStore):
    """A real store whose Nth commit fails as if the database connection dropped."""

    def __init__(self, url: str, fail_on: int) -> None:
        super().__init__(create_engine_for(url))
        self.commits = 0
        self.fail_on = fail_on

    def commit(self, batch: Batch) -> set[int]:
        self.commits += 1
        if self.commits == self.fail_on:
            raise StorageError("connection to the database was lost")
        return super().commit(batch)

    def commit_inline(self, batch: Batch) -> set[int] | None:
        return None  # every commit goes through commit(), where the failure is injected


@pytest.mark.parametrize("fail_on", [1, 2, 3])
async def test_a_failed_group_commit_is_recovered_from_the_database(
    database_url: str, fail_on: int
) -> None:
    store = FlakyStore(database_url, fail_on)
    wf = workflow(
        {"name": "a", "function": f"{T}:add", "args": {"a": 1, "b": 1}},
        {
            "name": "b",
            "function": f"{T}:add",
            "dependsOn": ["a"],
            "args": {"a": "{{ tasks['a'].output }}", "b": 1},
        },
        {
            "name": "c",
            "function": f"{T}:add",
            "dependsOn": ["b"],
            "args": {"a": "{{ tasks['b'].output }}", "b": 1},
        },
    )
    try:
        run, tasks = await execute(store, wf)
    finally:
        store.close()
    assert store.commits > fail_on
    assert run.phase is RunPhase.SUCCEEDED
    assert [tasks[n].output for n in "abc"] == [2, 3, 4]


async def test_a_retried_run_gives_each_task_its_full_retry_limit_again(
    store: SqlStore, tmp_path: Path
) -> None:
    wf = workflow(
        {
            "name": "flaky",
            "function": f"{T}:flaky",
            "args": {"marker": str(tmp_path / "m"), "fail_times": 3},
            "retry": {"limit": 1, "backoff": {"seconds": 0.01}},
        }
    )
    first, tasks = await execute(store, wf)
    assert (first.phase, tasks["flaky"].attempt) == (RunPhase.FAILED, 2)
    control.request(store, "default", first.name, "retry")
    final = await engine(store).drive(first.id)
    (task,) = store.list_tasks(first.id)
    assert final.phase is RunPhase.SUCCEEDED
    assert (task.attempt, task.output) == (4, 4)  # attempt 3 failed and was retried once


@pytest.mark.postgresql
async def test_postgresql_notifies_engines_of_control_requests_without_polling(
    tmp_path: Path,
) -> None:
    """With polling every 60 s, only LISTEN/NOTIFY can deliver the pause in time."""
    from tests.conftest import SERVERS, url_text

    server = SERVERS["postgresql"]
    server.check()
    name = f"tf_notify_{os.getpid()}"
    url = url_text(server.create(name))
    try:
        upgrade(url)
        store = SqlStore.from_url(url)
        slow = EngineSettings(poll_seconds=60, lease_seconds=300)
        wf = workflow(
            {"name": "first", "function": f"{T}:async_sleep", "args": {"seconds": 0.3}},
            {
                "name": "second",
                "function": f"{T}:echo",
                "dependsOn": ["first"],
                "args": {"value": 2},
            },
        )
        run = control.submit_run(store, wf)
        driving = asyncio.create_task(engine(store, slow).drive(run.id))
        await until(lambda: phases(store, run.id)["first"] is TaskPhase.RUNNING)
        await asyncio.to_thread(control.request, store, "default", run.name, "pause")
        await until(lambda: store.get_run_by_id(run.id).phase is RunPhase.PAUSED, timeout=10)
        await asyncio.to_thread(control.request, store, "default", run.name, "terminate")
        final = await asyncio.wait_for(driving, 10)
        assert final.phase is RunPhase.TERMINATED
        assert phases(store, run.id)["second"] is TaskPhase.TERMINATED  # never started
        store.close()
    finally:
        server.drop(name)


async def test_a_second_driver_follows_a_run_another_engine_owns(store: SqlStore) -> None:
    wf = workflow(
        *(
            {"name": f"t{i}", "function": f"{T}:async_sleep", "args": {"seconds": 0.05}}
            for i in range(5)
        ),
    )
    run = control.submit_run(store, wf)
    owner = asyncio.create_task(engine(store, owner="engine-a").drive(run.id))
    await until(lambda: store.get_run_by_id(run.id).owner == "engine-a")
    follower = engine(store, owner="engine-b")
    followed = await asyncio.wait_for(follower.drive(run.id), 20)
    assert (await owner).phase is followed.phase is RunPhase.SUCCEEDED
    assert {t.attempt for t in store.list_tasks(run.id)} == {1}


# -- control with no engine running ------------------------------------------------------


async def test_terminate_of_a_run_no_engine_owns_takes_effect_at_once(store: SqlStore) -> None:
    wf = workflow(
        {"name": "a", "function": f"{T}:echo", "args": {"value": 1}},
        {"name": "b", "function": f"{T}:echo", "dependsOn": ["a"], "args": {"value": 2}},
    )
    run = control.submit_run(store, wf)
    control.request(store, "default", run.name, "terminate")
    record = store.get_run_by_id(run.id)
    assert (record.phase, record.owner, record.lease_expires_at) == (
        RunPhase.TERMINATED,
        None,
        None,
    )
    assert record.finished_at is not None
    assert phases(store, run.id) == {"a": TaskPhase.TERMINATED, "b": TaskPhase.TERMINATED}

    # ... so that retry works with no server either.
    control.request(store, "default", run.name, "retry")
    final = await engine(store).drive(run.id)
    assert final.phase is RunPhase.SUCCEEDED
    assert [t.output for t in store.list_tasks(run.id)] == [1, 2]


async def test_terminate_of_a_run_whose_engine_died_closes_the_lost_attempt(
    store: SqlStore,
) -> None:
    wf = workflow(
        {"name": "slow", "function": f"{T}:async_sleep", "args": {"seconds": 30}},
        {"name": "after", "function": f"{T}:echo", "dependsOn": ["slow"], "args": {"value": 1}},
    )
    run = control.submit_run(store, wf)
    # An engine claimed the run, started `slow` and died; its lease has expired.
    past = utcnow() - timedelta(minutes=5)
    expired = past + timedelta(seconds=30)
    assert store.claim_run(run.id, "dead-engine", past, expired) is not None
    slow = store.list_tasks(run.id)[0]
    slow.phase, slow.attempt, slow.started_at = TaskPhase.RUNNING, 1, past
    assert store.commit(Batch("dead-engine", expired, task_updates=[slow])) == set()

    control.request(store, "default", run.name, "terminate")
    record = store.get_run_by_id(run.id)
    assert (record.phase, record.owner) == (RunPhase.TERMINATED, None)
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["slow"].phase, tasks["slow"].attempt) == (TaskPhase.TERMINATED, 1)
    assert tasks["after"].phase is TaskPhase.TERMINATED
    assert [log.text for log in store.get_logs(run.id, "slow")] == [
        "attempt 1 was lost with its engine\n"
    ]


async def test_terminate_of_a_run_a_live_engine_owns_is_left_to_that_engine(
    store: SqlStore,
) -> None:
    wf = workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}})
    run = control.submit_run(store, wf)
    now = utcnow()
    assert store.claim_run(run.id, "engine-a", now, now + timedelta(minutes=1)) is not None
    control.request(store, "default", run.name, "terminate")
    record = store.get_run_by_id(run.id)
    # The request only changed the desired state: the claim is a compare-and-set.
    assert (record.phase, record.owner) == (RunPhase.PENDING, "engine-a")
    assert record.desired_state is DesiredState.TERMINATED
    final = await engine(store, owner="engine-a").drive(run.id)
    assert final.phase is RunPhase.TERMINATED
    assert phases(store, run.id) == {"a": TaskPhase.TERMINATED}


# -- what a retry runs again ------------------------------------------------------------


def _handled(marker: Path, **handler: object) -> Workflow:
    """``a`` fails until ``marker`` exists; ``handler`` handles its failure;
    ``cleanup`` runs whatever happened to ``handler``."""
    return workflow(
        {"name": "a", "function": f"{T}:fail_once_per_file", "args": {"marker": str(marker)}},
        {
            "name": "handler",
            "dependsOn": ["a"],
            "triggerRule": "anyFailed",
            **(handler or {"function": f"{T}:echo", "args": {"value": "handled"}}),
        },
        {
            "name": "cleanup",
            "function": f"{T}:echo",
            "dependsOn": ["handler"],
            "triggerRule": "allDone",
            "args": {"value": "clean"},
        },
    )


async def test_retry_reevaluates_what_is_downstream_of_a_fixed_failure(
    store: SqlStore, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    first, tasks = await execute(store, _handled(marker))
    assert first.phase is RunPhase.FAILED
    assert {n: (t.phase, t.output) for n, t in tasks.items()} == {
        "a": (TaskPhase.FAILED, None),
        "handler": (TaskPhase.SUCCEEDED, "handled"),
        "cleanup": (TaskPhase.SUCCEEDED, "clean"),
    }

    marker.write_text("yes")
    control.request(store, "default", first.name, "retry")
    # Everything downstream of the failure was reset, succeeded or not.
    assert set(phases(store, first.id).values()) == {TaskPhase.PENDING}
    final = await asyncio.wait_for(engine(store).drive(first.id), 20)
    assert final.phase is RunPhase.SUCCEEDED
    after = {t.name: t for t in store.list_tasks(first.id)}
    assert (after["a"].phase, after["a"].attempt, after["a"].output) == (
        TaskPhase.SUCCEEDED,
        2,
        "fixed",
    )
    # Nothing failed any more: the handler is skipped and keeps no stale output.
    assert (after["handler"].phase, after["handler"].output) == (TaskPhase.SKIPPED, None)
    assert (after["cleanup"].phase, after["cleanup"].attempt) == (TaskPhase.SUCCEEDED, 2)


async def test_retry_runs_a_failure_handler_again_when_the_failure_repeats(
    store: SqlStore, tmp_path: Path
) -> None:
    first, _ = await execute(store, _handled(tmp_path / "never"))
    assert first.phase is RunPhase.FAILED
    control.request(store, "default", first.name, "retry")
    final = await asyncio.wait_for(engine(store).drive(first.id), 20)
    assert final.phase is RunPhase.FAILED
    after = {t.name: (t.phase, t.attempt) for t in store.list_tasks(first.id)}
    assert after == {
        "a": (TaskPhase.FAILED, 2),
        "handler": (TaskPhase.SUCCEEDED, 2),
        "cleanup": (TaskPhase.SUCCEEDED, 2),
    }


async def test_a_fanned_out_handler_skipped_on_retry_closes_its_sub_tasks(
    store: SqlStore, tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    wf = _handled(marker, forEach="{{ [1, 2] }}", function=f"{T}:boom")
    first, tasks = await execute(store, wf)
    assert first.phase is RunPhase.FAILED
    assert tasks["handler"].phase is TaskPhase.FAILED
    assert {tasks[f"handler[{i}]"].phase for i in (0, 1)} == {TaskPhase.FAILED}

    marker.write_text("yes")
    control.request(store, "default", first.name, "retry")
    # The failed sub-tasks were reset with their parent; when the parent is
    # skipped they end with it instead of waiting forever.
    final = await asyncio.wait_for(engine(store).drive(first.id), 20)
    assert final.phase is RunPhase.SUCCEEDED
    after = phases(store, first.id)
    assert after["handler"] is after["handler[0]"] is after["handler[1]"] is TaskPhase.SKIPPED
