"""The pure state machine: trigger rules, fan-in, run outcomes and control requests."""

import itertools

import pytest

from tideflow.engine.transitions import (
    TASK_TRANSITIONS,
    Readiness,
    can_transition,
    fan_in,
    plan_control,
    readiness,
    run_outcome,
)
from tideflow.errors import InvalidTransitionError
from tideflow.model import DesiredState, RunPhase, TaskPhase, TriggerRule

S, F, K, U, T = (
    TaskPhase.SUCCEEDED,
    TaskPhase.FAILED,
    TaskPhase.SKIPPED,
    TaskPhase.UPSTREAM_FAILED,
    TaskPhase.TERMINATED,
)
RUN, SKIP, UPF = Readiness.RUN, Readiness.SKIP, Readiness.UPSTREAM_FAILED


@pytest.mark.parametrize(
    ("rule", "upstream", "expected"),
    [
        (TriggerRule.ALL_SUCCESS, [S, S], RUN),
        (TriggerRule.ALL_SUCCESS, [S, F], UPF),
        (TriggerRule.ALL_SUCCESS, [S, U], UPF),
        (TriggerRule.ALL_SUCCESS, [S, K], SKIP),
        (TriggerRule.ALL_SUCCESS, [K, F], UPF),
        (TriggerRule.ALL_DONE, [F, K, U], RUN),
        (TriggerRule.ANY_FAILED, [S, F], RUN),
        (TriggerRule.ANY_FAILED, [S, U], RUN),
        (TriggerRule.ANY_FAILED, [S, S], SKIP),
        (TriggerRule.ANY_FAILED, [K], SKIP),
        (TriggerRule.ANY_SUCCESS, [F, S], RUN),
        (TriggerRule.ANY_SUCCESS, [F, K], UPF),
        (TriggerRule.ANY_SUCCESS, [K, K], SKIP),
    ],
)
def test_trigger_rules_decide_from_upstream_outcomes(
    rule: TriggerRule, upstream: list[TaskPhase], expected: Readiness
) -> None:
    assert readiness(rule, upstream) is expected


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_a_task_without_upstream_always_runs(rule: TriggerRule) -> None:
    assert readiness(rule, []) is RUN


def test_fan_in_fails_when_any_sub_task_fails() -> None:
    assert fan_in([S, S, S]) is S
    assert fan_in([S, F, S]) is F
    assert fan_in([S, T]) is T
    assert fan_in([S, K]) is S
    assert fan_in([]) is S


def test_run_outcome() -> None:
    assert run_outcome([S, S, K], DesiredState.RUNNING) is RunPhase.SUCCEEDED
    assert run_outcome([S, F, S], DesiredState.RUNNING) is RunPhase.FAILED
    assert run_outcome([S, U], DesiredState.RUNNING) is RunPhase.FAILED
    assert run_outcome([S, S], DesiredState.TERMINATED) is RunPhase.TERMINATED


def test_finished_tasks_only_move_when_a_retry_resets_them() -> None:
    # A retry resets what failed and everything downstream, whatever its phase.
    assert TASK_TRANSITIONS[S] == TASK_TRANSITIONS[K] == {TaskPhase.PENDING}
    for finished in (S, F, K, U, T):
        assert can_transition(finished, TaskPhase.PENDING)
    # A succeeded or skipped task never runs again without a reset.
    for phase in (S, K):
        for other in TaskPhase:
            if other not in (phase, TaskPhase.PENDING):
                assert not can_transition(phase, other), (phase, other)
    # Lost with its engine, or handed back by it: queued for a new attempt.
    assert can_transition(TaskPhase.RUNNING, TaskPhase.QUEUED)


LIVE = [RunPhase.PENDING, RunPhase.RUNNING, RunPhase.PAUSED]
FINISHED = [RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.TERMINATED]


@pytest.mark.parametrize("phase", LIVE)
def test_pause_resume_terminate_a_live_run(phase: RunPhase) -> None:
    assert plan_control("pause", phase, DesiredState.RUNNING).desired is DesiredState.PAUSED
    assert plan_control("resume", phase, DesiredState.PAUSED).desired is DesiredState.RUNNING
    assert plan_control("terminate", phase, DesiredState.PAUSED).desired is DesiredState.TERMINATED


@pytest.mark.parametrize(
    ("action", "phase"), list(itertools.product(["pause", "resume", "terminate"], FINISHED))
)
def test_control_of_a_finished_run_is_refused(action: str, phase: RunPhase) -> None:
    with pytest.raises(InvalidTransitionError, match=f"cannot {action}: the run already finished"):
        plan_control(action, phase, DesiredState.RUNNING)  # type: ignore[arg-type]


def test_resume_needs_a_paused_run() -> None:
    with pytest.raises(InvalidTransitionError, match="not paused"):
        plan_control("resume", RunPhase.RUNNING, DesiredState.RUNNING)


def test_nothing_but_waiting_follows_terminate() -> None:
    with pytest.raises(InvalidTransitionError, match="being terminated"):
        plan_control("pause", RunPhase.RUNNING, DesiredState.TERMINATED)


@pytest.mark.parametrize("phase", [RunPhase.FAILED, RunPhase.TERMINATED])
def test_retry_reopens_failed_and_terminated_runs(phase: RunPhase) -> None:
    plan = plan_control("retry", phase, DesiredState.RUNNING)
    assert plan.reopen and plan.desired is DesiredState.RUNNING


def test_retry_refuses_succeeded_and_live_runs() -> None:
    with pytest.raises(InvalidTransitionError, match="only a Failed or Terminated run"):
        plan_control("retry", RunPhase.SUCCEEDED, DesiredState.RUNNING)
    with pytest.raises(InvalidTransitionError, match="still Running"):
        plan_control("retry", RunPhase.RUNNING, DesiredState.RUNNING)
