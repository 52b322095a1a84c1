"""Conversion between table rows and the records of the ``Store`` protocol.

Used by :mod:`tideflow.storage.store` only. JSON columns (manifests, params,
outputs) are encoded compactly here, so every write path encodes the same way.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import Any

from sqlalchemy import RowMapping

from tideflow.engine.ports import LogRecord, RunRecord, TaskRecord, WorkflowRecord
from tideflow.errors import Problem, ValidationError
from tideflow.model import DesiredState, RunPhase, TaskPhase, Workflow, to_document


def dump_json(value: Any, *, where: str) -> str:
    """Compact JSON for a column; ``where`` names the value in the error if it is not JSON."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        problem = Problem(path=where, message=f"not JSON-serialisable: {error}")
        raise ValidationError([problem]) from error


def load_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dump_workflow(workflow: Workflow) -> str:
    return dump_json(to_document(workflow), where="workflow")


#: Parsed workflow snapshots by their JSON text, most recently used last. Claiming
#: a run, reading it again and listing it parse the same text: it is parsed once.
#: ``Workflow`` is frozen, so records may share one. Bounded by entries and text size
#: (a 100,000-task workflow is about 9 million characters).
_parsed: OrderedDict[str, Workflow] = OrderedDict()
_parsed_chars = 0
_parsed_lock = threading.Lock()
PARSED_ENTRIES = 64
PARSED_CHARS = 16 * 1024 * 1024


def load_workflow(text: str) -> Workflow:
    """The workflow in ``text``, parsed once per distinct text (see ``_parsed``)."""
    with _parsed_lock:
        found = _parsed.get(text)
        if found is not None:
            _parsed.move_to_end(text)
            return found
    workflow = Workflow.model_validate(json.loads(text))
    _remember(text, workflow)
    return workflow


def remember_workflow(text: str, workflow: Workflow) -> None:
    """Let :func:`load_workflow` return ``workflow`` itself for ``text``, its JSON.

    Called when a run is created, so that an engine in this process claiming it
    shares the caller's workflow instead of parsing a second copy (for a large
    workflow, the largest object of the run). Only a workflow whose free-form
    values are plain JSON is shared: parsing ``text`` gives an equal workflow
    then (a tuple in ``args`` would come back as a list).
    """
    if _plain_json(workflow):
        _remember(text, workflow)


def _remember(text: str, workflow: Workflow) -> None:
    global _parsed_chars
    if len(text) > PARSED_CHARS:
        return
    with _parsed_lock:
        if text not in _parsed:
            _parsed_chars += len(text)
        _parsed[text] = workflow  # the caller's copy replaces an equal one parsed earlier
        _parsed.move_to_end(text)
        while len(_parsed) > PARSED_ENTRIES or _parsed_chars > PARSED_CHARS:
            evicted, _ = _parsed.popitem(last=False)
            _parsed_chars -= len(evicted)


def _plain_json(workflow: Workflow) -> bool:
    """Whether the fields typed ``Any`` (where the model keeps any Python value)
    hold only what JSON gives back unchanged."""
    spec = workflow.spec
    values: list[Any] = [param.default for param in spec.params]
    values += [param.enum for param in spec.params]
    values += [hook.with_ for hook in spec.hooks or ()]
    for task in spec.tasks:
        if task.args is not None:
            values.append(task.args)
        if task.for_each is not None:
            values.append(task.for_each)
        if task.compensate is not None:
            values.append(task.compensate.args)
        if task.hooks is not None:
            values += [hook.with_ for hook in task.hooks]
    return all(_is_plain(value) for value in values)


def _is_plain(value: Any) -> bool:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_is_plain(item) for item in value)
    if kind is dict:
        return all(type(key) is str and _is_plain(item) for key, item in value.items())
    return False


def workflow_from_row(row: RowMapping) -> WorkflowRecord:
    return WorkflowRecord(
        namespace=row["namespace"],
        name=row["name"],
        generation=row["generation"],
        workflow=load_workflow(row["manifest"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def run_values(run: RunRecord) -> dict[str, Any]:
    """Column values for inserting ``run`` (its ``id`` is assigned by the database)."""
    return {
        "namespace": run.namespace,
        "name": run.name,
        "workflow_name": run.workflow_name,
        "workflow": dump_workflow(run.workflow),
        "params": dump_json(run.params, where=f"runs[{run.name}].params"),
        "desired_state": DesiredState(run.desired_state).value,
        "phase": RunPhase(run.phase).value,
        "generation": run.generation,
        "owner": run.owner,
        "lease_expires_at": run.lease_expires_at,
        "message": run.message,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "labels": dump_json(run.own_labels, where="metadata.labels") if run.own_labels else None,
        "observed_generation": run.observed_generation,
    }


def run_from_row(row: RowMapping) -> RunRecord:
    return RunRecord(
        id=row["id"],
        namespace=row["namespace"],
        name=row["name"],
        workflow_name=row["workflow_name"],
        workflow=load_workflow(row["workflow"]),
        params=json.loads(row["params"]),
        desired_state=DesiredState(row["desired_state"]),
        phase=RunPhase(row["phase"]),
        generation=row["generation"],
        owner=row["owner"],
        lease_expires_at=row["lease_expires_at"],
        message=row["message"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        own_labels=load_json(row["labels"]) or {},
        observed_generation=row["observed_generation"],
    )


def task_values(task: TaskRecord, run_id: int, seq: int) -> dict[str, Any]:
    """Column values for inserting ``task`` as instance number ``seq`` of run ``run_id``."""
    return {
        "run_id": run_id,
        "name": task.name,
        "seq": seq,
        "task": task.task,
        "idx": task.index,
        "item": (
            None
            if task.item is None
            else dump_json(task.item, where=f"runs[{task.run_id}].tasks[{task.name}].item")
        ),
        **task_state(task),
    }


def task_state(task: TaskRecord) -> dict[str, Any]:
    """The mutable columns of a task instance: what an update rewrites."""
    return {
        "phase": TaskPhase(task.phase).value,
        "attempt": task.attempt,
        "output": (
            None
            if task.output is None
            else dump_json(task.output, where=f"runs[{task.run_id}].tasks[{task.name}].output")
        ),
        "error": task.error,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "not_before": task.not_before,
        "attempt_base": task.attempt_base,
    }


def task_from_row(row: RowMapping) -> TaskRecord:
    name, task = row["name"], row["task"]
    return TaskRecord(
        run_id=row["run_id"],
        name=name,
        # One string for both when they are equal (all but fan-out children): the
        # driver returns two, 5 MB for a run of 100,000 tasks.
        task=name if task == name else task,
        index=row["idx"],
        item=load_json(row["item"]),
        phase=TaskPhase(row["phase"]),
        attempt=row["attempt"],
        output=load_json(row["output"]),
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        not_before=row["not_before"],
        attempt_base=row["attempt_base"],
    )


def log_values(log: LogRecord) -> dict[str, Any]:
    return {
        "run_id": log.run_id,
        "task": log.task,
        "attempt": log.attempt,
        "stream": log.stream,
        "text": log.text,
        "created_at": log.created_at,
    }


def log_from_row(row: RowMapping) -> LogRecord:
    return LogRecord(
        run_id=row["run_id"],
        task=row["task"],
        attempt=row["attempt"],
        stream=row["stream"],
        text=row["text"],
        created_at=row["created_at"],
        id=row["id"],
    )
