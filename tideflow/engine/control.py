"""The desired-state entry point: create runs and request control actions.

Front doors (CLI, HTTP API, operator) call these functions. They never touch
a running attempt: they write the desired state (and, for ``retry``, reset
task instances) in the database with a compare-and-set on the run's
generation, and whichever engine owns the run converges to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tideflow.dag import Graph
from tideflow.engine.ports import RunRecord, Store, TaskRecord, utcnow
from tideflow.engine.transitions import Action, plan_control
from tideflow.errors import ConflictError, Problem, ValidationError
from tideflow.model import RETRYABLE_TASK_PHASES, DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.templating import render
from tideflow.validation import check_params

#: Attempts at a compare-and-set before giving up on a run that keeps changing.
_CAS_TRIES = 20


def plan_tasks(workflow: Workflow) -> list[TaskRecord]:
    """The initial task instances of a run: one Pending instance per task."""
    return [TaskRecord(run_id=0, name=t.name, task=t.name) for t in workflow.spec.tasks]


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
    now: datetime | None = None,
) -> RunRecord:
    """Record a new run of ``workflow`` (a snapshot of it) for an engine to execute.

    Parameters are checked against the workflow's declarations and their
    defaults rendered (``{{ schedule.date }}`` is the current UTC date for a
    run started by hand). Raises ``ValidationError`` for bad parameters and
    ``ConflictError`` if ``name`` is taken.
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
    )
    return store.create_run(record, plan_tasks(workflow))


def request(store: Store, namespace: str, name: str, action: Action) -> RunRecord:
    """Ask for ``pause``, ``resume``, ``terminate`` or ``retry`` of a run.

    Raises ``NotFoundError`` for an unknown run and ``InvalidTransitionError``
    when the run's state forbids the action. Returns the run as it was read
    just before the request took effect.
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
            return run
    raise ConflictError(f"run {name!r} kept changing; try again")


def retry_resets(workflow: Workflow, tasks: list[TaskRecord]) -> list[TaskRecord]:
    """Task instances a retry of a finished run sets back to Pending.

    Failed, upstream-failed and terminated tasks, and every unsucceeded task
    downstream of them, run again; succeeded tasks keep their outputs. A
    fanned-out task whose failed sub-tasks are reset waits for them again.
    """
    graph = Graph.from_tasks(workflow.spec.tasks)
    by_name = {t.name: t for t in tasks}
    children: dict[str, list[TaskRecord]] = {}
    for task in tasks:
        if task.index is not None:
            children.setdefault(task.task, []).append(task)
    reset: dict[str, TaskRecord] = {}

    def clear(task: TaskRecord, phase: TaskPhase) -> None:
        task.phase = phase
        task.attempt_base = task.attempt  # a retried run gives each task its full retries
        task.error = None
        task.finished_at = None
        task.not_before = None
        reset[task.name] = task

    for name in graph.order:
        task = by_name[name]
        if task.phase not in RETRYABLE_TASK_PHASES:
            continue
        for affected in (name, *sorted(graph.descendants(name))):
            target = by_name[affected]
            if target.phase is TaskPhase.SUCCEEDED or affected in reset:
                continue
            # A fanned-out task keeps its sub-tasks: succeeded ones keep their
            # outputs, the others run again once the task is ready again.
            for kid in children.get(affected, []):
                if kid.phase in RETRYABLE_TASK_PHASES:
                    clear(kid, TaskPhase.PENDING)
            clear(target, TaskPhase.PENDING)
    return list(reset.values())
