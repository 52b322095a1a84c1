"""The desired-state entry point: create runs and request control actions.

Front doors (CLI, HTTP API, operator) call these functions. They never touch
a running attempt: they write the desired state (and, for ``retry``, reset
task instances) in the database with a compare-and-set on the run's
generation, and whichever engine owns the run converges to it. A run that no
live engine owns is terminated by the request itself, which takes the run's
lease like an engine for that moment (:func:`terminate_unowned`), so
``terminate`` then ``retry`` works with no server running.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from tideflow.definition.dag import Graph
from tideflow.definition.parameters import convert_values
from tideflow.definition.templating import render
from tideflow.definition.validation import check_params
from tideflow.engine.driving import new_owner_id
from tideflow.engine.ports import Batch, RunRecord, Store, TaskRecord, utcnow
from tideflow.engine.runstate import RunState
from tideflow.engine.transitions import Action, can_transition, plan_control
from tideflow.errors import ConflictError, Problem, ValidationError
from tideflow.model import RETRYABLE_TASK_PHASES, DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.model.collection import paused_collection

#: Attempts at a compare-and-set before giving up on a run that keeps changing.
_CAS_TRIES = 20
#: The lease a terminate request takes on a run no engine owns. It is released
#: in the same commit; the length only matters if this process dies meanwhile.
_CONTROL_LEASE = timedelta(seconds=30)


def plan_tasks(workflow: Workflow) -> list[TaskRecord]:
    """The initial task instances of a run: one Pending instance per task."""
    tasks = workflow.spec.tasks
    with paused_collection(len(tasks)):
        # Positional arguments: per task of 100,000, keywords cost a tenth of a second.
        return [TaskRecord(0, t.name, t.name) for t in tasks]


def run_name(workflow: Workflow, now: datetime) -> str:
    base = workflow.metadata.name[:40].rstrip("-")
    return f"{base}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def submit_run(
    store: Store,
    workflow: Workflow,
    params: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    desired: DesiredState = DesiredState.RUNNING,
    labels: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> RunRecord:
    """Record a new run of ``workflow`` (a snapshot of it) for an engine to execute.

    Parameters are checked against the workflow's declarations and converted
    to their declared types; template values are rendered (``{{ schedule.date }}``
    is the current UTC date for a run started by hand) and then converted too.
    Raises ``ValidationError`` for bad parameters and ``ConflictError`` if
    ``name`` is taken.
    """
    now = now or utcnow()
    merged = check_params(workflow, params or {})
    name = name or run_name(workflow, now)
    context = {
        "run": {
            "name": name,
            "namespace": workflow.metadata.namespace,
            "workflow": workflow.metadata.name,
        },
        "schedule": {"date": now.date().isoformat(), "time": now.isoformat()},
        "params": {},
    }
    try:
        rendered = {key: render(value, context) for key, value in merged.items()}
    except Exception as exc:
        raise ValidationError([Problem("spec.params", f"cannot render a default: {exc}")]) from exc
    # A rendered template ("{{ schedule.date }}") must fit its type like any value.
    rendered = convert_values(workflow.spec.params, rendered, given=params or {})
    record = RunRecord(
        id=0,
        namespace=workflow.metadata.namespace,
        name=name,
        workflow_name=workflow.metadata.name,
        workflow=workflow,
        params=rendered,
        desired_state=desired,
        phase=RunPhase.PENDING,
        created_at=now,
        own_labels=dict(labels or {}),
    )
    return store.create_run(record, plan_tasks(workflow))


def request(store: Store, namespace: str, name: str, action: Action) -> RunRecord:
    """Ask for ``pause``, ``resume``, ``terminate`` or ``retry`` of a run.

    Raises ``NotFoundError`` for an unknown run and ``InvalidTransitionError``
    when the run's state forbids the action. Returns the run as it was read
    just before the request took effect. ``terminate`` of a run no live engine
    owns has completed when this returns (see :func:`terminate_unowned`).
    """
    for _ in range(_CAS_TRIES):
        run = store.get_run(namespace, name)
        plan = plan_control(action, run.phase, run.desired_state)
        reset: list[TaskRecord] = []
        if plan.reopen:
            reset = retry_resets(run.workflow, store.list_tasks(run.id))
        if store.request_control(
            run.id, run.generation, plan.desired, reset_tasks=reset, reopen=plan.reopen
        ):
            if plan.desired is DesiredState.TERMINATED:
                terminate_unowned(store, run.id)
            return run
    raise ConflictError(f"run {name!r} kept changing; try again")


def terminate_unowned(store: Store, run_id: int, now: datetime | None = None) -> RunRecord | None:
    """Carry out a requested termination here, if no live engine owns the run.

    The request claims the run as an engine would (one compare-and-set that
    only succeeds while the run is unowned or its lease has expired), loads
    it into a :class:`RunState`, which converges it to its desired state
    Terminated (unfinished tasks Terminated, the run Terminated), and writes
    that in one commit fenced by the claim, which also releases the run.
    Nothing executes here: an attempt of a dead engine is only recorded as
    lost. If an engine owns the run, or claims it first, nothing happens and
    that engine terminates the run itself.

    Args:
        store: Where the run lives.
        run_id: A run whose desired state is already Terminated.
        now: The time to record; defaults to the current time.

    Returns:
        The run as terminated here, or None if an engine has it.
    """
    now = now or utcnow()
    owner = new_owner_id()
    until = now + _CONTROL_LEASE
    record = store.claim_run(run_id, owner, now, until)
    if record is None:
        return None
    try:
        if record.desired_state is not DesiredState.TERMINATED:
            store.release(owner, [run_id])  # another request changed it since
            return None
        state = RunState(record, store.load_tasks(run_id), now)
        runs, inserts, updates, logs = state.take_writes()
        batch = Batch(owner, until, runs, inserts, updates, logs, release=[run_id])
        # For a store that persists them; no listeners here, and the run is released.
        batch.events = list(state.take_effects().events)
        lost = store.commit(batch)
    except BaseException:
        # Give the run back so that an engine need not wait for this lease to expire.
        with contextlib.suppress(Exception):
            store.release(owner, [run_id])
        raise
    if lost:
        return None
    state.record.owner = state.record.lease_expires_at = None  # released by the commit
    return state.record


def retry_resets(workflow: Workflow, tasks: list[TaskRecord]) -> list[TaskRecord]:
    """Task instances a retry of a finished run sets back to Pending.

    Failed, upstream-failed and terminated tasks run again, and so does every
    task downstream of them, whatever its phase: a task that succeeded or was
    skipped may decide otherwise once its upstream tasks finish again (a
    failure handler that ran is skipped when what it handles now succeeds,
    and runs again when it fails again). Succeeded tasks with no reset task
    upstream keep their outputs. A fanned-out task keeps its sub-tasks: the
    succeeded ones keep their outputs, the others run again once the task is
    ready again.

    Args:
        workflow: The run's workflow snapshot.
        tasks: Every task instance of the run (they are modified in place).

    Returns:
        The reset instances, to write in the same transaction as the request.
    """
    graph = Graph.from_tasks(workflow.spec.tasks)
    by_name = {t.name: t for t in tasks}
    children: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        if task.index is not None:
            children.setdefault(task.task, []).append(task)
    reset: list[TaskRecord] = []

    def clear(task: TaskRecord) -> None:
        if not can_transition(task.phase, TaskPhase.PENDING):
            raise AssertionError(f"{task.name}: a retry cannot reset a {task.phase} task")
        task.phase = TaskPhase.PENDING
        task.attempt_base = task.attempt  # a retried run gives each task its full retries
        task.output = None
        task.error = None
        task.started_at = None
        task.finished_at = None
        task.not_before = None
        reset.append(task)

    # One pass in topological order: a task is affected if it failed or anything
    # upstream of it is affected.
    affected: set[str] = set()
    for name in graph.order:
        task = by_name[name]
        if task.phase not in RETRYABLE_TASK_PHASES and not any(
            u in affected for u in graph.upstream[name]
        ):
            continue
        affected.add(name)
        for kid in children.get(name, []):
            if kid.phase in RETRYABLE_TASK_PHASES:
                clear(kid)
        clear(task)
    return reset
