"""How the CLI shows things: tables, JSON, YAML, run manifests, run summaries."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tideflow.cli.session import Output
from tideflow.engine import status
from tideflow.engine.ports import RunRecord, TaskRecord, WorkflowRecord
from tideflow.model import ObjectMeta, WorkflowRef, WorkflowRun, WorkflowRunSpec, to_document

# Piped output is not wrapped at 80 columns (scripts read it); a terminal gets its width.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 4096)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def age(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "-"
    seconds = int((now - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def emit(data: Any, output: Output) -> None:
    """Print plain data as JSON or YAML."""
    if output is Output.JSON:
        console.print_json(json.dumps(data, default=str), indent=2, highlight=False)
    elif output is Output.NAME:
        items = data if isinstance(data, list) else [data]
        for item in items:
            console.print(object_name(item), markup=False)
    else:
        console.print(
            yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), markup=False
        )


#: Free-text columns: these fold; every other column (names, phases, numbers) never wraps.
_FREE_TEXT = frozenset({"OUTPUT", "ERROR", "DESCRIPTION"})


#: ``-o name`` prints objects the way kubectl does: ``kind.group/name``.
_RESOURCE = {"Workflow": "workflow.tideflow.dev", "WorkflowRun": "workflowrun.tideflow.dev"}


def object_name(document: dict[str, Any]) -> str:
    kind = _RESOURCE.get(str(document.get("kind")), "task")
    name = document["metadata"]["name"] if "metadata" in document else document["name"]
    return f"{kind}/{name}"


def empty(kind: str, namespace: str | None) -> None:
    """An empty listing says so on stderr, so scripts reading stdout see nothing."""
    where = f"in namespace {namespace}" if namespace else "in any namespace"
    errors.print(f"No {kind} found {where}.", markup=False)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(box=None, pad_edge=False, header_style="bold")
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    for i, column in enumerate(columns):
        if column in _FREE_TEXT:
            grid.add_column(column, overflow="fold")
        else:
            widest = max((len(Text.from_markup(row[i]).plain) for row in cells), default=0)
            grid.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
    for row in cells:
        grid.add_row(*row)
    console.print(grid)


def run_manifest(run: RunRecord, tasks: Sequence[TaskRecord]) -> WorkflowRun:
    """The run as a ``WorkflowRun`` manifest with its status (:func:`status.run_status`)."""
    return WorkflowRun(
        metadata=ObjectMeta(name=run.name, namespace=run.namespace, labels=run.labels or None),
        spec=WorkflowRunSpec(
            workflow_ref=WorkflowRef(name=run.workflow_name),
            params=run.params,
            desired_state=run.desired_state,
        ),
        status=status.run_status(run, tasks),
    )


def run_document(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    manifest = run_manifest(run, tasks)
    document = to_document(manifest)
    # Status fields are always shown, even at their defaults (finishedAt: null while running).
    shown = manifest.status
    assert shown is not None
    document["status"] = shown.model_dump(mode="json", by_alias=True)
    document["spec"].setdefault("desiredState", run.desired_state.value)
    return document


def task_document(task: TaskRecord) -> dict[str, Any]:
    return {
        "name": task.name,
        "task": task.task,
        "index": task.index,
        "phase": task.phase.value,
        "attempt": task.attempt,
        "output": task.output,
        "error": task.error,
        "startedAt": iso(task.started_at),
        "finishedAt": iso(task.finished_at),
    }


WORKFLOW_COLUMNS = ["NAMESPACE", "NAME", "TASKS", "GENERATION", "AGE"]
WORKFLOW_WIDE = ["LABELS", "DESCRIPTION"]
RUN_COLUMNS = ["NAMESPACE", "NAME", "WORKFLOW", "PHASE", "DESIRED", "AGE", "DURATION"]
RUN_WIDE = ["PROGRESS", "OWNER", "LABELS"]
TASK_COLUMNS = ["TASK", "PHASE", "ATTEMPT", "DURATION", "OUTPUT", "ERROR"]
TASK_WIDE = ["STARTED", "FINISHED"]


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "-"


def workflow_row(record: WorkflowRecord, now: datetime, *, wide: bool = False) -> list[Any]:
    spec = record.workflow.spec
    row: list[Any] = [
        record.namespace,
        record.name,
        len(spec.tasks),
        record.generation,
        age(record.updated_at, now),
    ]
    if wide:
        row += [labels_text(record.workflow.metadata.labels), spec.description or "-"]
    return row


def run_row(
    run: RunRecord,
    now: datetime,
    *,
    wide: bool = False,
    tasks: Sequence[TaskRecord] | None = None,
) -> list[Any]:
    row: list[Any] = [
        run.namespace,
        run.name,
        run.workflow_name,
        _phase(run.phase.value),
        run.desired_state.value,
        age(run.created_at, now),
        duration(run.started_at, run.finished_at or (now if run.started_at else None)),
    ]
    if wide:
        counts = status.task_counts(tasks or [])
        row += [
            f"{status.finished(counts)}/{counts.total}",
            run.owner or "-",
            labels_text(run.labels),
        ]
    return row


def task_row(task: TaskRecord, *, wide: bool = False) -> list[Any]:
    output = json.dumps(task.output, default=str) if task.output is not None else None
    if output and len(output) > 40:
        output = output[:37] + "..."
    row: list[Any] = [
        task.name,
        _phase(task.phase.value),
        task.attempt,
        duration(task.started_at, task.finished_at),
        output,
        task.error,
    ]
    if wide:
        row += [iso(task.started_at) or "-", iso(task.finished_at) or "-"]
    return row


_COLOURS = {
    "Succeeded": "green",
    "Running": "cyan",
    "Failed": "red",
    "UpstreamFailed": "red",
    "Terminated": "magenta",
    "Paused": "yellow",
    "Retrying": "yellow",
    "Skipped": "dim",
}


def _phase(phase: str) -> str:
    colour = _COLOURS.get(phase)
    return f"[{colour}]{phase}[/{colour}]" if colour else phase
