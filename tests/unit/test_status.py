"""The status projection: task counts, the Ready condition, observedGeneration."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tideflow.engine import status
from tideflow.engine.control import plan_tasks
from tideflow.engine.execution import Outcome
from tideflow.engine.ports import RunRecord, TaskRecord
from tideflow.engine.runstate import RunState
from tideflow.model import DesiredState, RunPhase, TaskCounts, TaskPhase, Workflow

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
P = TaskPhase


def _workflow(*tasks: dict[str, Any]) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "flow"}, "spec": {"tasks": list(tasks)}})


def _run(wf: Workflow | None = None, **fields: Any) -> RunRecord:
    wf = wf or _workflow({"name": "a", "command": ["true"]})
    values: dict[str, Any] = {
        "id": 7,
        "namespace": "default",
        "name": "flow-1",
        "workflow_name": "flow",
        "workflow": wf,
        "params": {},
        "desired_state": DesiredState.RUNNING,
        "phase": RunPhase.RUNNING,
        "created_at": NOW,
        **fields,
    }
    return RunRecord(**values)


def _task(name: str, phase: TaskPhase, index: int | None = None) -> TaskRecord:
    task = name.split("[")[0]
    return TaskRecord(run_id=7, name=name, task=task, index=index, phase=phase)


def test_counts_lump_every_unstarted_phase_into_pending() -> None:
    phases = [P.PENDING, P.QUEUED, P.RETRYING, P.RUNNING, P.SUCCEEDED, P.FAILED, P.SKIPPED]
    phases += [P.UPSTREAM_FAILED, P.TERMINATED, P.SUCCEEDED]
    expected = TaskCounts(
        total=10,
        pending=3,
        running=1,
        succeeded=2,
        failed=1,
        skipped=1,
        upstream_failed=1,
        terminated=1,
    )
    assert status.count_phases(phases) == expected
    assert status.count_phases(Counter(phases)) == expected
    assert status.finished(expected) == 6


def test_a_fanned_out_task_counts_as_its_sub_tasks_and_an_empty_one_as_itself() -> None:
    tasks = [
        _task("fetch", P.RUNNING),
        _task("fetch[0]", P.SUCCEEDED, 0),
        _task("fetch[1]", P.RUNNING, 1),
        _task("nothing", P.SUCCEEDED),  # a forEach over an empty list: no sub-tasks
        _task("report", P.PENDING),
    ]
    assert [t.name for t in status.leaf_tasks(tasks)] == [
        "fetch[0]",
        "fetch[1]",
        "nothing",
        "report",
    ]
    counts = status.task_counts(tasks)
    assert (counts.total, counts.succeeded, counts.running, counts.pending) == (4, 2, 1, 1)


def test_ready_is_true_only_for_a_succeeded_run_and_says_how_far_it_got() -> None:
    tasks = [_task("a", P.SUCCEEDED), _task("b", P.RUNNING), _task("c", P.PENDING)]
    running = status.run_status(_run(started_at=NOW), tasks)
    [ready] = running.conditions
    assert (ready.type, ready.status, ready.reason) == ("Ready", "False", "Running")
    assert ready.message == "1/3 tasks done"
    assert ready.last_transition_time == NOW

    done = [_task("a", P.SUCCEEDED), _task("b", P.SKIPPED)]
    end = NOW + timedelta(seconds=5)
    record = _run(phase=RunPhase.SUCCEEDED, started_at=NOW, finished_at=end)
    succeeded = status.run_status(record, done)
    [ready] = succeeded.conditions
    assert (ready.status, ready.reason, ready.message) == ("True", "Succeeded", "2/2 tasks done")
    assert ready.last_transition_time == end
    assert (succeeded.started_at, succeeded.finished_at) == (NOW, end)


def test_a_terminated_run_says_what_finished_and_what_was_terminated() -> None:
    tasks = [_task("a", P.SUCCEEDED), _task("b", P.FAILED), _task("c", P.TERMINATED)]
    record = _run(phase=RunPhase.TERMINATED, desired_state=DesiredState.TERMINATED)
    [ready] = status.run_status(record, tasks).conditions
    assert ready.message == "terminated: 2 of 3 tasks finished, 1 terminated"


def test_the_runs_own_message_wins_over_the_progress_message() -> None:
    message = "the run exceeded its timeout of 5s"
    record = _run(phase=RunPhase.FAILED, message=message)
    shown = status.run_status(record, [_task("a", P.TERMINATED)])
    assert shown.message == message
    assert shown.conditions[0].message == message


def test_observed_generation_is_the_engines_not_the_requested_one() -> None:
    record = _run(generation=3, observed_generation=2)
    assert status.run_status(record, []).observed_generation == 2
    assert status.run_status(_run(generation=1), []).observed_generation == 0  # never adopted


def test_the_engines_running_counts_are_the_status_counts() -> None:
    wf = _workflow(
        {"name": "list", "command": ["true"]},
        {"name": "fetch", "command": ["true"], "dependsOn": ["list"], "forEach": [1, 2, 3]},
        {"name": "none", "command": ["true"], "dependsOn": ["list"], "forEach": []},
        {"name": "report", "command": ["true"], "dependsOn": ["fetch", "none"]},
    )
    state = RunState(_run(wf, phase=RunPhase.PENDING), plan_tasks(wf), NOW)

    def same() -> None:
        assert state.counts() == status.task_counts(state.instances.values())

    same()
    attempt = state.start(state.instances["list"], NOW)
    assert attempt is not None
    same()
    state.complete("list", 1, Outcome("succeeded", output=[]), NOW)
    for name in ("fetch", "none"):
        assert state.expand(state.instances[name], NOW)
    same()
    assert state.counts().total == 6  # list, 3 sub-tasks, the empty fan-out, report
    state.start(state.instances["fetch[0]"], NOW)
    state.complete("fetch[0]", 1, Outcome("failed", error="boom", retryable=False), NOW)
    same()
    state.apply_desired(DesiredState.TERMINATED, 2, NOW)
    same()
    counts = state.counts()
    assert (counts.failed, counts.succeeded, counts.terminated) == (1, 2, 3)
