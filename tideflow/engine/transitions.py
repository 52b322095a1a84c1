"""The run and task state machines, as pure functions.

Everything here decides; nothing here does I/O. The reconciler applies these
decisions and the front doors use :func:`plan_control` to refuse control
requests the state machine forbids. Unit-tested exhaustively in
``tests/unit/test_transitions.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from tideflow.errors import InvalidTransitionError
from tideflow.model import DesiredState, RunPhase, TaskPhase, TriggerRule

P = TaskPhase

#: Every task-phase change the engine may make. Anything else is a bug.
TASK_TRANSITIONS: dict[TaskPhase, frozenset[TaskPhase]] = {
    P.PENDING: frozenset(
        {P.QUEUED, P.RUNNING, P.SUCCEEDED, P.FAILED, P.SKIPPED, P.UPSTREAM_FAILED, P.TERMINATED}
    ),
    P.QUEUED: frozenset({P.PENDING, P.RUNNING, P.FAILED, P.TERMINATED}),
    # A Running task may finish, fail, back off, be terminated, or (its engine
    # died) be queued again as a new attempt.
    P.RUNNING: frozenset({P.SUCCEEDED, P.FAILED, P.RETRYING, P.TERMINATED, P.QUEUED}),
    P.RETRYING: frozenset({P.QUEUED, P.RUNNING, P.FAILED, P.TERMINATED}),
    # Finished phases only move when a retry of the run resets them to Pending:
    # what failed, and everything downstream of it, whatever its phase (a task
    # that succeeded or was skipped may decide otherwise once its upstream
    # tasks finish again). A retry resets nothing else.
    P.SUCCEEDED: frozenset({P.PENDING}),
    P.SKIPPED: frozenset({P.PENDING}),
    P.FAILED: frozenset({P.PENDING, P.RUNNING}),
    P.UPSTREAM_FAILED: frozenset({P.PENDING}),
    P.TERMINATED: frozenset({P.PENDING, P.RUNNING}),
}


def can_transition(old: TaskPhase, new: TaskPhase) -> bool:
    return new is old or new in TASK_TRANSITIONS[old]


class Readiness(Enum):
    """What to do with a task whose upstream tasks have all finished."""

    RUN = "run"
    SKIP = "skip"
    UPSTREAM_FAILED = "upstream-failed"


_FAILED = frozenset({P.FAILED, P.UPSTREAM_FAILED, P.TERMINATED})


def readiness(rule: TriggerRule, upstream: Iterable[TaskPhase]) -> Readiness:
    """Apply a trigger rule to the (finished) phases of a task's upstream tasks.

    * ``allSuccess``: run if all succeeded; a failure upstream makes the task
      UpstreamFailed; otherwise (something was skipped) it is Skipped.
    * ``allDone``: always run.
    * ``anyFailed``: run if any upstream failed, else Skipped (a failure handler).
    * ``anySuccess``: run if any upstream succeeded; else UpstreamFailed if
      something failed, else Skipped.
    A task without upstream tasks runs under every rule.
    """
    phases = list(upstream)
    if not phases or rule is TriggerRule.ALL_DONE:
        return Readiness.RUN
    # Counted in C (list.count): this runs once per task over all its upstream phases.
    succeeded = phases.count(P.SUCCEEDED)
    if rule is TriggerRule.ALL_SUCCESS and succeeded == len(phases):
        return Readiness.RUN
    failed = not _FAILED.isdisjoint(phases)
    if rule is TriggerRule.ALL_SUCCESS:
        return Readiness.UPSTREAM_FAILED if failed else Readiness.SKIP
    if rule is TriggerRule.ANY_FAILED:
        return Readiness.RUN if failed else Readiness.SKIP
    if succeeded:
        return Readiness.RUN
    return Readiness.UPSTREAM_FAILED if failed else Readiness.SKIP


def fan_in(children: Iterable[TaskPhase]) -> TaskPhase:
    """The phase of a fanned-out task once all its sub-tasks have finished."""
    phases = set(children)
    if phases <= {P.SUCCEEDED}:
        return P.SUCCEEDED
    if P.FAILED in phases or P.UPSTREAM_FAILED in phases:
        return P.FAILED
    if P.TERMINATED in phases:
        return P.TERMINATED
    return P.SUCCEEDED  # succeeded and skipped children only


def run_outcome(task_phases: Iterable[TaskPhase], desired: DesiredState) -> RunPhase:
    """The final phase of a run whose tasks have all finished.

    A run fails if any task failed (even one handled by an ``anyFailed``
    task): a failure is something an operator must see.
    """
    if desired is DesiredState.TERMINATED:
        return RunPhase.TERMINATED
    phases = set(task_phases)
    if phases & {P.FAILED, P.UPSTREAM_FAILED}:
        return RunPhase.FAILED
    if P.TERMINATED in phases:
        return RunPhase.TERMINATED
    return RunPhase.SUCCEEDED


def live_phase(desired: DesiredState) -> RunPhase:
    """The phase of an unfinished run that its engine is converging to ``desired``."""
    return RunPhase.PAUSED if desired is DesiredState.PAUSED else RunPhase.RUNNING


Action = Literal["pause", "resume", "terminate", "retry"]


@dataclass(frozen=True)
class ControlPlan:
    """What a control request changes: the new desired state, and whether a
    finished run is reopened (retry)."""

    desired: DesiredState
    reopen: bool = False


def plan_control(action: Action, phase: RunPhase, desired: DesiredState) -> ControlPlan:
    """Decide a control request against the run's phase and desired state.

    Raises :class:`InvalidTransitionError` with the reason when the state
    machine forbids it. Repeating a request that is already in effect (pause a
    paused run) is allowed and changes nothing.
    """
    finished = phase.finished
    if action == "retry":
        if phase in (RunPhase.FAILED, RunPhase.TERMINATED):
            return ControlPlan(DesiredState.RUNNING, reopen=True)
        if finished:
            raise InvalidTransitionError(
                f"cannot retry: the run {phase.value}; "
                "only a Failed or Terminated run can be retried"
            )
        raise InvalidTransitionError(
            f"cannot retry: the run is still {phase.value}; "
            "terminate it first or wait for it to finish"
        )
    if finished:
        raise InvalidTransitionError(
            f"cannot {action}: the run already finished ({phase.value})"
            + (
                "; use retry to run its failed tasks again"
                if phase is not RunPhase.SUCCEEDED
                else ""
            )
        )
    if desired is DesiredState.TERMINATED:
        raise InvalidTransitionError(f"cannot {action}: the run is being terminated")
    if action == "pause":
        return ControlPlan(DesiredState.PAUSED)
    if action == "resume":
        if desired is not DesiredState.PAUSED:
            raise InvalidTransitionError("cannot resume: the run is not paused")
        return ControlPlan(DesiredState.RUNNING)
    return ControlPlan(DesiredState.TERMINATED)
