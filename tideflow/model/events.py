"""The events the engine reports: one closed set, named as hooks name them.

Every transition the engine commits produces at most one event, emitted to
listeners after the commit that recorded it (and carried in that commit's
batch, so that a store may persist them in the same transaction).
``hooks[].on`` of a workflow or task lists names from this set; validation
refuses any other name.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What happened to a run or to one of its task instances."""

    #: The run was recorded (``submit_run``); nothing has run yet. Not emitted
    #: yet: a run is created by ``Store.create_run``, not by an engine commit, so
    #: there is no batch to carry the event nor listeners to hand it to (to do:
    #: ``create_run`` writes it, once the store persists events).
    RUN_CREATED = "RunCreated"
    #: The run left Pending for Running: its first start, or its start after a
    #: ``retry`` reopened it.
    RUN_STARTED = "RunStarted"
    #: The run stopped starting tasks (desired state Paused); running attempts finish.
    RUN_PAUSED = "RunPaused"
    #: A Paused run is Running again.
    RUN_RESUMED = "RunResumed"
    #: Every task finished and none failed.
    RUN_SUCCEEDED = "RunSucceeded"
    #: Every task finished and one failed (or upstream-failed), or the run timed out.
    RUN_FAILED = "RunFailed"
    #: The run was terminated on request; its unfinished tasks were terminated.
    RUN_TERMINATED = "RunTerminated"
    #: An attempt of a task instance started (once per attempt; ``attempt`` says which).
    TASK_STARTED = "TaskStarted"
    #: A task instance succeeded (for a fanned-out task: all its sub-tasks did).
    TASK_SUCCEEDED = "TaskSucceeded"
    #: A task instance failed for good: its last attempt failed and no retry is left,
    #: or it could not start (its inputs failed to render).
    TASK_FAILED = "TaskFailed"
    #: An attempt failed (or timed out) and another attempt is scheduled after a backoff.
    TASK_RETRYING = "TaskRetrying"
    #: A task instance failed for good because its last attempt exceeded ``timeoutSeconds``.
    TASK_TIMED_OUT = "TaskTimedOut"
    #: A task instance will not run: its trigger rule said skip.
    TASK_SKIPPED = "TaskSkipped"
    #: A task instance will not run because an upstream task failed.
    TASK_UPSTREAM_FAILED = "TaskUpstreamFailed"
    #: A task instance was terminated unfinished (run terminated or timed out).
    TASK_TERMINATED = "TaskTerminated"

    @property
    def is_run_event(self) -> bool:
        """Whether the event is about the run itself, not one of its task instances."""
        return self.value.startswith("Run")


#: Every event name, in declaration order (what ``hooks[].on`` may list).
EVENT_NAMES: tuple[str, ...] = tuple(kind.value for kind in EventKind)
