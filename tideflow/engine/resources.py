"""Verbs on stored objects that every front door shares: apply and delete.

The CLI, the Python client and (later) the HTTP API and the operator call
these, so ``kubectl apply``-style semantics are the same everywhere:

* applying a ``WorkflowRun`` that does not exist creates it; re-applying it
  with a changed ``spec.desiredState`` is a control request (the run state
  machine refuses what it forbids); a changed ``spec.params`` or
  ``spec.workflowRef`` is refused, like the immutable spec of a Kubernetes Job;
* deleting a run is refused while it is unfinished, unless forced, which
  terminates it first and waits for it to end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from tideflow.definition import templating
from tideflow.definition.validation import check_params
from tideflow.engine import control
from tideflow.engine.ports import ApplyResult, RunRecord, Store
from tideflow.engine.transitions import Action
from tideflow.errors import ConflictError, NotFoundError, Problem, ValidationError
from tideflow.model import DesiredState, WorkflowRun

#: The control request that makes a run's desired state the one a manifest declares.
ACTIONS: dict[DesiredState, Action] = {
    DesiredState.RUNNING: "resume",
    DesiredState.PAUSED: "pause",
    DesiredState.TERMINATED: "terminate",
}

#: How long ``delete run --force`` waits for the terminated run to end.
FORCE_DELETE_TIMEOUT_SECONDS = 30.0


def apply_run(store: Store, manifest: WorkflowRun) -> ApplyResult:
    """Create the run, or converge an existing one to the manifest's desired state.

    Raises:
        ValidationError: the workflow does not exist, the parameters are bad, or
            the manifest changes an immutable field of an existing run.
        InvalidTransitionError: the run state machine refuses the desired state.
    """
    meta, spec = manifest.metadata, manifest.spec
    try:
        existing = store.get_run(meta.namespace, meta.name)
    except NotFoundError:
        try:
            workflow = store.get_workflow(meta.namespace, spec.workflow_ref.name).workflow
        except NotFoundError as exc:
            raise ValidationError([Problem("spec.workflowRef.name", str(exc))]) from exc
        control.submit_run(
            store,
            workflow,
            spec.params,
            name=meta.name,
            desired=spec.desired_state,
            labels=meta.labels,
        )
        return "created"
    problems = immutable_changes(existing, manifest)
    if problems:
        raise ValidationError(problems)
    if existing.desired_state is spec.desired_state:
        return "unchanged"
    control.request(store, meta.namespace, meta.name, ACTIONS[spec.desired_state])
    return "configured"


def immutable_changes(existing: RunRecord, manifest: WorkflowRun) -> list[Problem]:
    """What ``manifest`` changes that cannot change once the run exists."""
    spec = manifest.spec
    if spec.workflow_ref.name != existing.workflow_name:
        return [
            Problem(
                "spec.workflowRef",
                f'is immutable once the run exists (it runs workflow "{existing.workflow_name}"); '
                "create a new run",
            )
        ]
    if _params_changed(existing, spec.params):
        return [Problem("spec.params", "is immutable once the run exists; create a new run")]
    return []


def _params_changed(existing: RunRecord, given: Mapping[str, Any]) -> bool:
    """Whether ``given`` asks for other parameters than the run was created with.

    A parameter the manifest leaves out counts as its default; a default that
    is a template (rendered when the run was created) cannot be compared and
    counts as unchanged.
    """
    wanted = check_params(existing.workflow, given, path="spec.params")
    for name, value in wanted.items():
        if name not in given and isinstance(value, str) and templating.is_template(value):
            continue
        if existing.params.get(name) != value:
            return True
    return False


def delete_run(
    store: Store,
    namespace: str,
    name: str,
    *,
    force: bool = False,
    timeout: float = FORCE_DELETE_TIMEOUT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Delete a finished run with its tasks, logs and history.

    With ``force`` an unfinished run is terminated first (its attempts are
    cancelled by whichever engine owns it) and deleted once it has ended.

    Raises:
        NotFoundError: no such run.
        ConflictError: the run is unfinished and ``force`` is not set, or it
            did not end within ``timeout`` seconds.
    """
    run = store.get_run(namespace, name)
    if not run.phase.finished:
        if not force:
            raise ConflictError(
                f'run "{name}" is {run.phase.value}; wait for it to finish, terminate it, '
                "or delete it with --force (which terminates it first)"
            )
        if run.desired_state is not DesiredState.TERMINATED:
            control.request(store, namespace, name, "terminate")
        deadline = time.monotonic() + timeout
        while not store.get_run(namespace, name).phase.finished:
            if time.monotonic() > deadline:
                raise ConflictError(
                    f'run "{name}" did not finish terminating within {timeout:g}s; '
                    "its engine may be busy: try again"
                )
            sleep(0.1)
    store.delete_run(namespace, name)
