"""Commands that read state: ``get``, ``describe``, ``logs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from tideflow.cli import completion, pools, render, watching
from tideflow.cli.render import console
from tideflow.cli.session import (
    KindType,
    Output,
    global_options,
    output_option,
    resolve_output,
    session,
)
from tideflow.engine.ports import RunRecord, Store, TaskRecord, WorkflowRecord, utcnow
from tideflow.errors import NotFoundError
from tideflow.model import RunPhase, TaskPhase, to_document
from tideflow.model.labels import LabelSelector

CONTEXT = {"help_option_names": ["-h", "--help"]}

_KINDS = {
    "workflows": "workflow",
    "workflow": "workflow",
    "wf": "workflow",
    "runs": "run",
    "run": "run",
    "workflowruns": "run",
    "workflowrun": "run",
    "tasks": "task",
    "task": "task",
    "pools": "pool",
    "pool": "pool",
}
_RUN_KINDS = {k: v for k, v in _KINDS.items() if v == "run"}
_PHASES = sorted({p.value for p in RunPhase} | {p.value for p in TaskPhase})


def _phase(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    for phase in _PHASES:  # case-insensitive, printed as the phase is named everywhere
        if phase.lower() == value.lower():
            return phase
    raise click.BadParameter(f"{value!r} is not one of {', '.join(_PHASES)}")


@click.command(context_settings=CONTEXT)
@click.argument("kind", type=KindType(_KINDS, "workflows, runs, tasks or pools"), metavar="KIND")
@click.argument("name", required=False, shell_complete=completion.kind_names)
@click.option("-l", "--selector", help="Label selector: key=value,key!=value,key,!key.")
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="List across all namespaces (workflows, runs)."
)
@click.option("--phase", callback=_phase, help="Only runs (or tasks) in this phase.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--workflow", help="Only runs of this workflow.")
@click.option("-w", "--watch", is_flag=True, help="Print changes as they happen (Ctrl-C stops).")
@global_options
def get(
    kind: str,
    name: str | None,
    selector: str | None,
    all_namespaces: bool,
    phase: str | None,
    limit: int,
    workflow: str | None,
    watch: bool,
    output: str | None,
) -> None:
    """List workflows, runs, the tasks of a run, or pools:
    get workflows|runs|run NAME|tasks RUN|pools."""
    state = session()
    fmt = resolve_output(output)
    labels = LabelSelector.parse(selector)
    namespace = None if all_namespaces else state.namespace
    store = state.store()
    what = kind
    if what == "pool":
        if watch:
            raise click.UsageError("-w watches runs and tasks, not pools")
        pools.get_pools(store, name, fmt)
    elif what == "task":
        if name is None:
            raise click.UsageError("name the run: tideflow get tasks RUN")
        run = store.get_run(state.namespace, name)
        if watch:
            raise click.exceptions.Exit(watching.watch_tasks(store, run, fmt, phase))
        _print_tasks(store.list_tasks(run.id), fmt, phase)
    elif what == "run":
        if name is not None:
            run = store.get_run(state.namespace, name)
            if watch:
                raise click.exceptions.Exit(watching.watch_run(store, run, fmt))
            _print_runs(store, [run], fmt, single=True)
            return
        phases = [RunPhase(phase)] if phase in {p.value for p in RunPhase} else []
        if phase is not None and not phases:
            raise click.BadParameter(f"{phase!r} is not a run phase", param_hint="'--phase'")

        def listing() -> list[RunRecord]:
            return store.list_runs(
                namespace, workflow, limit, phases=phases, selector=labels or None
            )

        if watch:
            raise click.exceptions.Exit(watching.watch_runs(store, listing, fmt))
        runs = listing()
        if not runs and fmt in (Output.TABLE, Output.WIDE, Output.NAME):
            render.empty("runs", namespace)
            return
        _print_runs(store, runs, fmt)
    else:
        if watch:
            raise click.UsageError("-w watches runs and tasks, not workflows")
        if name is not None:
            records = [store.get_workflow(state.namespace, name)]
        else:
            records = store.list_workflows(namespace, selector=labels or None)[:limit]
            if not records and fmt in (Output.TABLE, Output.WIDE, Output.NAME):
                render.empty("workflows", namespace)
                return
        _print_workflows(records, fmt, single=name is not None)


get.params.append(output_option(*Output))


def _print_workflows(records: Sequence[WorkflowRecord], fmt: Output, *, single: bool) -> None:
    now = utcnow()
    if fmt in (Output.TABLE, Output.WIDE):
        wide = fmt is Output.WIDE
        columns = render.WORKFLOW_COLUMNS + (render.WORKFLOW_WIDE if wide else [])
        render.table(columns, [render.workflow_row(r, now, wide=wide) for r in records])
        return
    docs = [to_document(r.workflow) for r in records]
    render.emit(docs[0] if single else docs, fmt)


def _print_runs(
    store: Store, runs: Sequence[RunRecord], fmt: Output, *, single: bool = False
) -> None:
    now = utcnow()
    if fmt is Output.TABLE:
        render.table(render.RUN_COLUMNS, [render.run_row(r, now) for r in runs])
    elif fmt is Output.WIDE:
        rows = [render.run_row(r, now, wide=True, tasks=store.list_tasks(r.id)) for r in runs]
        render.table(render.RUN_COLUMNS + render.RUN_WIDE, rows)
    elif fmt is Output.NAME:
        for r in runs:
            console.print(f"workflowrun.tideflow.dev/{r.name}", markup=False)
    else:
        docs = [render.run_document(r, store.list_tasks(r.id)) for r in runs]
        render.emit(docs[0] if single else docs, fmt)


def _print_tasks(tasks: Sequence[TaskRecord], fmt: Output, phase: str | None) -> None:
    if phase is not None:
        tasks = [t for t in tasks if t.phase.value == phase]
    if fmt in (Output.TABLE, Output.WIDE):
        wide = fmt is Output.WIDE
        columns = render.TASK_COLUMNS + (render.TASK_WIDE if wide else [])
        render.table(columns, [render.task_row(t, wide=wide) for t in tasks])
    elif fmt is Output.NAME:
        for t in tasks:
            console.print(f"task/{t.name}", markup=False)
    else:
        render.emit([render.task_document(t) for t in tasks], fmt)


@click.command(context_settings=CONTEXT)
@click.argument("kind", type=KindType(_RUN_KINDS, "run"), metavar="run")
@click.argument("name", metavar="RUN", shell_complete=completion.run_names)
@global_options
def describe(kind: str, name: str) -> None:
    """Show a run in detail: status, parameters, tasks and errors."""
    store = session().store()
    run_record = store.get_run(session().namespace, name)
    tasks = store.list_tasks(run_record.id)
    document: dict[str, Any] = render.run_document(run_record, tasks)
    render.emit(
        {"metadata": document["metadata"], "spec": document["spec"], "status": document["status"]},
        Output.YAML,
    )
    console.print()
    render.table(render.TASK_COLUMNS, [render.task_row(t) for t in tasks])


@click.command(context_settings=CONTEXT)
@click.argument("run_name", metavar="RUN", shell_complete=completion.run_names)
@click.argument("task", required=False)
@click.option("--attempt", type=click.IntRange(min=1), help="Only this attempt.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the task (or run) ends.")
@global_options
def logs(run_name: str, task: str | None, attempt: int | None, follow: bool) -> None:
    """Print what the attempts of a run (or of one task) wrote."""
    store = session().store()
    record = store.get_run(session().namespace, run_name)
    if task is not None:
        instances = store.list_tasks(record.id)
        if task not in {t.name for t in instances} | {t.task for t in instances}:
            raise NotFoundError(f'task "{task}" not found in run "{run_name}"')
    printer = watching.LogPrinter(attempt)
    last = printer.print(store.get_logs(record.id, task))
    if follow:
        raise click.exceptions.Exit(watching.follow_logs(store, record, task, printer, last))


COMMANDS = [get, describe, logs]
