"""The run's state machine on its own: what each transition leads to, as Effects.

No engine, no store, no clock: a RunState built from a run record and its
planned task instances, driven with explicit times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tideflow.engine.control import plan_tasks
from tideflow.engine.execution import Outcome
from tideflow.engine.ports import RunRecord, TaskRecord
from tideflow.engine.runstate import NO_EFFECTS, Effects, RunState
from tideflow.model import DesiredState, EventKind, RunPhase, TaskPhase, Workflow

E = EventKind
P = TaskPhase
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _workflow(*tasks: dict[str, Any]) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "flow"}, "spec": {"tasks": list(tasks)}})


def _state(
    *tasks: dict[str, Any], instances: list[TaskRecord] | None = None, **run: Any
) -> RunState:
    wf = _workflow(*tasks)
    values: dict[str, Any] = {
        "id": 7,
        "namespace": "default",
        "name": "flow-1",
        "workflow_name": "flow",
        "workflow": wf,
        "params": {},
        "desired_state": DesiredState.RUNNING,
        "phase": RunPhase.PENDING,
        "created_at": T0,
        **run,
    }
    return RunState(RunRecord(**values), instances or plan_tasks(wf), T0)


def _adopted(*tasks: dict[str, Any], **run: Any) -> RunState:
    """A state whose adoption effects (RunStarted) were already taken."""
    state = _state(*tasks, **run)
    assert [e.kind for e in state.take_effects().events] == [E.RUN_STARTED]
    return state


def _ready(state: RunState, now: datetime) -> list[str]:
    """The names ready to start, in order, leaving them all ready."""
    return [task.name for task in state.ready_tasks(now)]


def _start(state: RunState, name: str, now: datetime) -> int:
    """Start ``name``, which must be ready, and return its attempt number."""
    for task in state.ready_tasks(now):
        if task.name == name:
            attempt = state.start(task, now)
            assert attempt is not None
            return attempt.number
    raise AssertionError(f"{name} is not ready")


def _events(effects: Effects) -> list[tuple[EventKind, str | None]]:
    return [(e.kind, e.task) for e in effects.events]


def test_a_succeeded_task_makes_its_dependents_ready_and_reports_it() -> None:
    state = _adopted(
        {"name": "a", "command": ["true"]},
        {"name": "b", "command": ["true"], "dependsOn": ["a"]},
        {"name": "c", "command": ["true"], "dependsOn": ["a"]},
    )
    assert _ready(state, _at(1)) == ["a"]
    number = _start(state, "a", _at(1))
    assert _ready(state, _at(1)) == []  # running, no longer ready
    state.complete("a", number, Outcome("succeeded", output=42), _at(2))

    assert _ready(state, _at(2)) == ["b", "c"]
    effects = state.take_effects()
    assert _events(effects) == [(E.TASK_STARTED, "a"), (E.TASK_SUCCEEDED, "a")]
    assert (effects.cancel, effects.timers, effects.release) == ((), (), False)
    assert state.instances["a"].output == 42


def test_effects_are_taken_once() -> None:
    state = _adopted({"name": "a", "command": ["true"]})
    _start(state, "a", _at(1))
    assert _events(state.take_effects()) == [(E.TASK_STARTED, "a")]
    again = state.take_effects()
    assert again is NO_EFFECTS and not again


def test_a_failure_with_retries_times_the_retry_at_its_backoff() -> None:
    state = _adopted(
        {
            "name": "a",
            "command": ["true"],
            "retry": {"limit": 2, "backoff": {"seconds": 5, "factor": 3}},
        }
    )
    _start(state, "a", _at(1))
    state.complete("a", 1, Outcome("failed", error="boom"), _at(2))

    effects = state.take_effects()
    assert effects.timers == [(_at(7), "a")]
    assert _events(effects)[-1] == (E.TASK_RETRYING, "a")
    assert effects.events[-1].payload["delaySeconds"] == 5
    assert state.instances["a"].phase is P.RETRYING
    assert _ready(state, _at(2)) == []  # not before its timer fires

    state.retry_due("a")
    assert _start(state, "a", _at(7)) == 2
    state.complete("a", 2, Outcome("failed", error="boom"), _at(8))
    assert state.take_effects().timers == [(_at(8 + 15), "a")]  # 5 * 3 ** (2 - 1)


def test_a_stale_outcome_changes_nothing() -> None:
    state = _adopted({"name": "a", "command": ["true"]})
    _start(state, "a", _at(1))
    state.take_effects()
    state.complete("a", 99, Outcome("succeeded"), _at(2))  # not the current attempt
    assert state.take_effects() is NO_EFFECTS
    assert state.instances["a"].phase is P.RUNNING


def test_pausing_lets_running_attempts_finish_and_starts_nothing_new() -> None:
    state = _adopted({"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"]})
    _start(state, "a", _at(1))
    state.take_effects()
    state.apply_desired(DesiredState.PAUSED, 2, _at(2))

    effects = state.take_effects()
    assert _events(effects) == [(E.RUN_PAUSED, None)]
    assert (effects.cancel, effects.release) == ((), False)
    assert not state.has_ready and _ready(state, _at(2)) == []

    state.apply_desired(DesiredState.RUNNING, 3, _at(3))
    assert _events(state.take_effects()) == [(E.RUN_RESUMED, None)]
    assert _ready(state, _at(3)) == ["b"]  # still ready, in its place


def test_terminating_cancels_running_attempts_and_releases_the_run() -> None:
    state = _adopted(
        {"name": "a", "command": ["true"]},
        {"name": "b", "command": ["true"]},
        {"name": "c", "command": ["true"], "dependsOn": ["a"]},
    )
    _start(state, "a", _at(1))
    _start(state, "b", _at(1))
    state.take_effects()
    state.apply_desired(DesiredState.TERMINATED, 2, _at(2))

    effects = state.take_effects()
    assert effects.cancel == ["a", "b"]
    assert _events(effects) == [
        (E.TASK_TERMINATED, "a"),
        (E.TASK_TERMINATED, "b"),
        (E.TASK_TERMINATED, "c"),
        (E.RUN_TERMINATED, None),
    ]
    assert effects.release and state.record.phase is RunPhase.TERMINATED
    assert not state.running and _ready(state, _at(2)) == []


def test_the_last_task_finishing_succeeds_the_run_and_releases_it() -> None:
    state = _adopted(
        {"name": "a", "command": ["true"]},
        {"name": "b", "command": ["true"], "dependsOn": ["a"]},
    )
    state.complete("a", _start(state, "a", _at(1)), Outcome("succeeded"), _at(2))
    assert not state.take_effects().release
    state.take_writes()  # committed with it
    state.complete("b", _start(state, "b", _at(3)), Outcome("succeeded"), _at(4))

    effects = state.take_effects()
    assert _events(effects) == [
        (E.TASK_STARTED, "b"),
        (E.TASK_SUCCEEDED, "b"),
        (E.RUN_SUCCEEDED, None),
    ]
    assert effects.release
    assert (state.record.phase, state.record.finished_at) == (RunPhase.SUCCEEDED, _at(4))
    runs, _, updates, _ = state.take_writes()
    assert [u.phase for u in runs] == [RunPhase.SUCCEEDED]
    assert {t.name: t.phase for t in updates} == {"b": P.SUCCEEDED}


def test_tasks_not_started_stay_ready_in_their_place() -> None:
    state = _adopted(*({"name": n, "command": ["true"]} for n in "abcd"))
    for task in state.ready_tasks(_at(1)):
        if task.name == "c":
            break  # as Admission does when the engine's slots run out
        if task.name == "b":
            assert state.start(task, _at(1)) is not None
    assert _ready(state, _at(1)) == ["a", "c", "d"]
    assert state.take_effects().events[0].task == "b"


def test_a_for_each_task_fans_out_on_the_way_and_is_not_yielded() -> None:
    state = _adopted({"name": "fan", "command": ["true"], "forEach": [1, 2]})
    assert _ready(state, _at(1)) == ["fan[0]", "fan[1]"]
    _, inserts, _, _ = state.take_writes()
    assert [(t.name, t.item) for t in inserts] == [("fan[0]", 1), ("fan[1]", 2)]
    assert state.instances["fan"].phase is P.RUNNING


def test_adopting_a_retrying_task_times_its_retry_again() -> None:
    # What re-adopting a run after a failed commit relies on: its timers come back.
    wf_tasks = [{"name": "a", "command": ["true"], "retry": {"limit": 1}}]
    [task] = plan_tasks(_workflow(*wf_tasks))
    task.phase, task.attempt, task.not_before = P.RETRYING, 1, _at(30)
    state = _state(*wf_tasks, instances=[task], phase=RunPhase.RUNNING)

    effects = state.take_effects()
    assert effects.timers == [(_at(30), "a")]
    assert (effects.events, effects.release) == ((), False)
