"""Phases of runs and tasks, and the desired states a user can ask for."""

from __future__ import annotations

from enum import StrEnum


class DesiredState(StrEnum):
    """What the user wants a run to be doing; the engine converges to it."""

    RUNNING = "Running"
    PAUSED = "Paused"
    TERMINATED = "Terminated"


class RunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATED = "Terminated"

    @property
    def finished(self) -> bool:
        return self in FINISHED_RUN_PHASES


FINISHED_RUN_PHASES = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.TERMINATED})


class TaskPhase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    UPSTREAM_FAILED = "UpstreamFailed"
    TERMINATED = "Terminated"

    @property
    def finished(self) -> bool:
        return self in FINISHED_TASK_PHASES


FINISHED_TASK_PHASES = frozenset(
    {
        TaskPhase.SUCCEEDED,
        TaskPhase.FAILED,
        TaskPhase.SKIPPED,
        TaskPhase.UPSTREAM_FAILED,
        TaskPhase.TERMINATED,
    }
)

#: Phases a ``retry`` of a finished run resets (with everything downstream of them).
RETRYABLE_TASK_PHASES = frozenset(
    {TaskPhase.FAILED, TaskPhase.UPSTREAM_FAILED, TaskPhase.TERMINATED}
)
