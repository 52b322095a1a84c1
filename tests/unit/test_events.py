"""The typed events the run's state machine reports, and what the engine writes with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tideflow.engine.control import plan_tasks
from tideflow.engine.driving import Event
from tideflow.engine.execution import Outcome
from tideflow.engine.ports import RunRecord
from tideflow.engine.runstate import RunState
from tideflow.model import EVENT_NAMES, DesiredState, EventKind, RunPhase, Workflow

E = EventKind
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _state(*tasks: dict[str, Any], **run: Any) -> RunState:
    wf = Workflow.model_validate({"metadata": {"name": "flow"}, "spec": {"tasks": list(tasks)}})
    values: dict[str, Any] = {
        "id": 7,
        "namespace": "desk",
        "name": "flow-1",
        "workflow_name": "flow",
        "workflow": wf,
        "params": {},
        "desired_state": DesiredState.RUNNING,
        "phase": RunPhase.PENDING,
        "created_at": T0,
        **run,
    }
    return RunState(RunRecord(**values), plan_tasks(wf), T0)


def _kinds(state: RunState) -> list[tuple[EventKind, str | None]]:
    return [(e.kind, e.task) for e in state.take_effects().events]


def _start(state: RunState, name: str, now: datetime) -> None:
    assert state.start(state.instances[name], now) is not None


def test_the_event_set_is_closed_and_named_as_hooks_name_it() -> None:
    assert "RunFailed" in EVENT_NAMES and "TaskTimedOut" in EVENT_NAMES
    assert E("TaskStarted") is E.TASK_STARTED
    assert E.RUN_PAUSED.is_run_event and not E.TASK_FAILED.is_run_event
    assert len(set(EVENT_NAMES)) == len(EventKind)


def test_a_small_run_reports_its_typed_sequence() -> None:
    state = _state(
        {"name": "a", "command": ["true"]},
        {"name": "b", "command": ["true"], "dependsOn": ["a"], "retry": {"limit": 1}},
        {"name": "c", "command": ["true"], "dependsOn": ["b"]},
    )
    assert _kinds(state) == [(E.RUN_STARTED, None)]
    _start(state, "a", _at(1))
    state.complete("a", 1, Outcome("succeeded", output=1), _at(2))
    assert _kinds(state) == [(E.TASK_STARTED, "a"), (E.TASK_SUCCEEDED, "a")]

    _start(state, "b", _at(3))
    state.complete("b", 1, Outcome("timed_out", error="timed out after 1s"), _at(4))
    events = state.take_effects().events
    assert [(e.kind, e.task, e.attempt) for e in events] == [
        (E.TASK_STARTED, "b", 1),
        (E.TASK_RETRYING, "b", 1),
    ]
    retrying = events[1]
    assert retrying.payload["error"] == "timed out after 1s"
    assert retrying.payload["timedOut"] is True
    assert retrying.payload["notBefore"] == (_at(4) + timedelta(seconds=1)).isoformat()
    assert (retrying.run_id, retrying.run, retrying.namespace, retrying.workflow) == (
        7,
        "flow-1",
        "desk",
        "flow",
    )
    assert retrying.at == _at(4)

    state.retry_due("b")
    _start(state, "b", _at(6))
    state.complete("b", 2, Outcome("timed_out", error="timed out after 1s"), _at(7))
    # The last attempt timed out: TaskTimedOut, not TaskFailed; c never runs.
    assert _kinds(state) == [
        (E.TASK_STARTED, "b"),
        (E.TASK_TIMED_OUT, "b"),
        (E.TASK_UPSTREAM_FAILED, "c"),
        (E.RUN_FAILED, None),
    ]


def test_a_final_failure_that_is_not_a_timeout_is_task_failed() -> None:
    state = _state(
        {"name": "a", "command": ["true"]},
        {"name": "b", "command": ["true"], "dependsOn": ["a"]},
        {"name": "on-fail", "command": ["true"], "dependsOn": ["a"], "triggerRule": "anyFailed"},
        {"name": "on-ok", "command": ["true"], "dependsOn": ["a"], "triggerRule": "anySuccess"},
    )
    state.take_effects()
    _start(state, "a", _at(1))
    state.complete("a", 1, Outcome("failed", error="boom"), _at(2))
    events = state.take_effects().events
    assert (events[1].kind, events[1].payload) == (
        E.TASK_FAILED,
        {"phase": "Failed", "error": "boom"},
    )
    kinds = [(e.kind, e.task) for e in events][1:]
    assert (E.TASK_UPSTREAM_FAILED, "b") in kinds and (E.TASK_UPSTREAM_FAILED, "on-ok") in kinds
    assert (E.RUN_FAILED, None) not in kinds  # on-fail still has to run
    _start(state, "on-fail", _at(3))
    state.complete("on-fail", 1, Outcome("succeeded"), _at(4))
    assert _kinds(state)[-2:] == [(E.TASK_SUCCEEDED, "on-fail"), (E.RUN_FAILED, None)]


def test_a_trigger_rule_that_skips_reports_task_skipped() -> None:
    state = _state(
        {"name": "a", "command": ["true"]},
        {"name": "cleanup", "command": ["true"], "dependsOn": ["a"], "triggerRule": "anyFailed"},
    )
    state.take_effects()
    _start(state, "a", _at(1))
    state.complete("a", 1, Outcome("succeeded"), _at(2))
    assert _kinds(state)[1:] == [
        (E.TASK_SUCCEEDED, "a"),
        (E.TASK_SKIPPED, "cleanup"),
        (E.RUN_SUCCEEDED, None),
    ]


def test_pause_resume_and_terminate_report_run_events_and_observe_the_generation() -> None:
    state = _state({"name": "a", "command": ["true"]}, {"name": "b", "command": ["true"]})
    assert state.record.observed_generation == 1  # adopting acts on the generation read
    runs, *_ = state.take_writes()
    assert [u.observed_generation for u in runs] == [1]
    state.take_effects()

    _start(state, "a", _at(1))
    state.apply_desired(DesiredState.PAUSED, 2, _at(2))
    state.apply_desired(DesiredState.RUNNING, 3, _at(3))
    state.apply_desired(DesiredState.TERMINATED, 4, _at(4))
    effects = state.take_effects()
    assert [(e.kind, e.task) for e in effects.events] == [
        (E.TASK_STARTED, "a"),
        (E.RUN_PAUSED, None),
        (E.RUN_RESUMED, None),
        (E.TASK_TERMINATED, "a"),
        (E.TASK_TERMINATED, "b"),
        (E.RUN_TERMINATED, None),
    ]
    assert effects.cancel == ["a"]
    runs, *_ = state.take_writes()
    [update] = runs
    assert (update.phase, update.observed_generation) == (RunPhase.TERMINATED, 4)
    assert state.seen_generation == 4


def test_a_run_created_paused_reports_paused_then_resumed() -> None:
    state = _state({"name": "a", "command": ["true"]}, desired_state=DesiredState.PAUSED)
    assert _kinds(state) == [(E.RUN_PAUSED, None)]
    state.apply_desired(DesiredState.RUNNING, 2, _at(1))
    assert _kinds(state) == [(E.RUN_RESUMED, None)]


def test_readopting_a_running_run_reports_nothing_new() -> None:
    state = _state({"name": "a", "command": ["true"]}, phase=RunPhase.RUNNING, generation=5)
    assert _kinds(state) == []
    assert state.record.observed_generation == 5


def test_a_run_timeout_fails_the_run_with_its_message_in_the_payload() -> None:
    state = _state({"name": "a", "command": ["true"]})
    state.take_effects()
    _start(state, "a", _at(1))
    state.stop(_at(2), "the run exceeded its timeout of 1s")
    events = state.take_effects().events
    assert [e.kind for e in events] == [E.TASK_STARTED, E.TASK_TERMINATED, E.RUN_FAILED]
    assert events[1].payload["error"] == "the run exceeded its timeout of 1s"
    assert events[2].payload == {"phase": "Failed", "message": "the run exceeded its timeout of 1s"}


def test_listeners_see_the_record_with_the_runs_counts() -> None:
    state = _state({"name": "a", "command": ["true"]})
    state.take_effects()
    _start(state, "a", _at(1))
    state.complete("a", 1, Outcome("failed", error="boom", retryable=False), _at(2))
    failed = Event.of(state.take_effects().events[1], state.counts())
    assert (failed.kind, failed.task, failed.attempt, failed.error) == (
        E.TASK_FAILED,
        "a",
        1,
        "boom",
    )
    assert failed.counts is not None and failed.counts.failed == 1
    assert (failed.run, failed.run_id, failed.namespace, failed.at) == ("flow-1", 7, "desk", _at(2))
