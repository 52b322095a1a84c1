"""The status of a run: one projection, from its record and its task instances.

Everything that shows how a run is doing reads it from here: ``get run``
(the ``status`` of its ``WorkflowRun`` manifest), ``run --wait`` (the
progress bar and the summary), :meth:`Client.status <tideflow.client.Client.status>`,
and the engine's own events (:meth:`RunState.counts
<tideflow.engine.runstate.RunState.counts>` counts with :func:`count_phases`
too). The functions are pure: no I/O, no clock.

Task counts are of the task instances that do work: a fanned-out task counts
as its sub-tasks, not as one more task. ``pending`` covers every instance that
has not finished and is not running (Pending, Queued and Retrying).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tideflow.engine.ports import RunRecord, TaskRecord
from tideflow.model import RunPhase, TaskCounts, TaskPhase, WorkflowRunStatus
from tideflow.model.manifests import Condition

__all__ = [
    "count_phases",
    "finished",
    "leaf_tasks",
    "progress_message",
    "ready_condition",
    "run_status",
    "task_counts",
]

P = TaskPhase


def leaf_tasks(tasks: Iterable[TaskRecord]) -> list[TaskRecord]:
    """Task instances that do work: a fanned-out task counts as its sub-tasks.

    A ``forEach`` task over an empty list has no sub-tasks, so it counts as itself.
    """
    tasks = list(tasks)
    parents = {t.task for t in tasks if t.index is not None}
    return [t for t in tasks if t.index is not None or t.name not in parents]


def count_phases(phases: Mapping[TaskPhase, int] | Iterable[TaskPhase]) -> TaskCounts:
    """Task counts from the phases of the instances that do work.

    The one place a phase is mapped to a count: :func:`task_counts` and the
    engine's running counts both go through it.

    Args:
        phases: Either how many instances are in each phase, or the phase of
            each instance.

    Returns:
        The counts, ``total`` included.
    """
    count: dict[TaskPhase, int] = dict.fromkeys(TaskPhase, 0)
    if isinstance(phases, Mapping):
        for phase, n in phases.items():
            count[phase] += n
    else:
        for phase in phases:
            count[phase] += 1
    return TaskCounts(
        total=sum(count.values()),
        pending=count[P.PENDING] + count[P.QUEUED] + count[P.RETRYING],
        running=count[P.RUNNING],
        succeeded=count[P.SUCCEEDED],
        failed=count[P.FAILED],
        skipped=count[P.SKIPPED],
        upstream_failed=count[P.UPSTREAM_FAILED],
        terminated=count[P.TERMINATED],
    )


def task_counts(tasks: Iterable[TaskRecord]) -> TaskCounts:
    """Counts of the task instances of a run (as :func:`leaf_tasks` selects them)."""
    return count_phases(t.phase for t in leaf_tasks(tasks))


def finished(counts: TaskCounts) -> int:
    """Task instances that reached a final phase."""
    return (
        counts.succeeded
        + counts.failed
        + counts.skipped
        + counts.upstream_failed
        + counts.terminated
    )


def progress_message(phase: RunPhase, counts: TaskCounts) -> str:
    """``N/M tasks done``; for a Terminated run, what finished and what was terminated."""
    if phase is RunPhase.TERMINATED:
        done = finished(counts) - counts.terminated
        return (
            f"terminated: {done} of {counts.total} tasks finished, {counts.terminated} terminated"
        )
    return f"{finished(counts)}/{counts.total} tasks done"


def ready_condition(run: RunRecord, counts: TaskCounts) -> Condition:
    """The run's ``Ready`` condition: True once it Succeeded.

    Its reason is the run's phase; its message the run's own message when it
    has one (a timeout, say), else :func:`progress_message`. Its transition
    time is the latest of creation, start and end the run has reached.
    """
    return Condition(
        type="Ready",
        status="True" if run.phase is RunPhase.SUCCEEDED else "False",
        reason=run.phase.value,
        message=run.message or progress_message(run.phase, counts),
        last_transition_time=run.finished_at or run.started_at or run.created_at,
    )


def run_status(run: RunRecord, tasks: Sequence[TaskRecord]) -> WorkflowRunStatus:
    """The ``status`` of the run's ``WorkflowRun``.

    Args:
        run: The run as stored.
        tasks: Its task instances (``Store.list_tasks``).

    Returns:
        Phase, the ``Ready`` condition, task counts, message, start and end
        times, and ``observedGeneration``: the generation the engine has acted
        on (see ``RunRecord.observed_generation``; equal to the run's
        ``generation`` once its latest control request has taken effect).
    """
    counts = task_counts(tasks)
    return WorkflowRunStatus(
        phase=run.phase,
        observed_generation=run.observed_generation,
        conditions=[ready_condition(run, counts)],
        tasks=counts,
        message=run.message,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )
