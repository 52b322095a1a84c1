"""The ``tideflow`` command line: a front door that wires storage, engine and executors.

Exit status: 0 success; 1 a waited run failed or was terminated; 2 bad input
(invalid manifest, unknown run, forbidden control request); 3 the database or
another service could not be used. The mapping lives in :func:`main` only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from tideflow.cli import render
from tideflow.cli.render import Output
from tideflow.config import Settings, load_settings
from tideflow.engine import control
from tideflow.engine.ports import Store, utcnow
from tideflow.engine.transitions import Action
from tideflow.errors import (
    ConflictError,
    NotFoundError,
    Problem,
    StorageError,
    TideflowError,
    ValidationError,
)
from tideflow.loading import read_path
from tideflow.model import Manifest, Workflow, WorkflowRun, to_document
from tideflow.validation import check

app = typer.Typer(
    name="tideflow",
    help="Workflow engine for quantitative data pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(help="Database schema: migrations and DDL.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class _State:
    config: str | None = None
    database_url: str | None = None
    namespace: str = "default"
    _settings: Settings | None = None
    _store: Store | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, database_url=self.database_url)
            logging.basicConfig(
                level=self._settings.log_level,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        return self._settings

    def store(self) -> Store:
        if self._store is None:
            from tideflow.storage.migrating import upgrade
            from tideflow.storage.store import SqlStore

            settings = self.settings()
            store = SqlStore.from_url(settings.database.url)
            if settings.database.auto_migrate:
                upgrade(store.engine)
            self._store = store
        return self._store


state = _State()

FileOption = Annotated[
    list[Path], typer.Option("--filename", "-f", help="Manifest file or directory (repeatable).")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")]


@app.callback()
def _global(
    config: Annotated[str | None, typer.Option("--config", help="Settings file.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database URL.")] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
) -> None:
    state.config, state.database_url, state.namespace = config, db, namespace


def _load(paths: list[Path]) -> list[tuple[str, Manifest]]:
    """Read and check manifests; raise with every problem of every file at once."""
    problems: list[Problem] = []
    manifests: list[tuple[str, Manifest]] = []
    salvaged: list[tuple[str, Manifest]] = []
    for path in paths:
        found, errors, partial = read_path(path)
        manifests += found
        problems += errors
        salvaged += partial
    try:
        check(manifests + salvaged)
    except ValidationError as exc:
        problems += exc.problems
    if problems:
        problems.sort(key=lambda problem: problem.source)  # stable: file by file
        raise ValidationError(problems)
    return manifests


# -- manifests -----------------------------------------------------------------------


@app.command()
def validate(filename: FileOption) -> None:
    """Check manifests; print every problem found (exit 2) or what is valid."""
    for source, manifest in _load(filename):
        render.console.print(
            f"{source}: {manifest.kind} {manifest.metadata.name} is valid", markup=False
        )


@app.command()
def apply(filename: FileOption) -> None:
    """Create or update workflows (and start WorkflowRuns), like kubectl apply."""
    store = state.store()
    manifests = _load(filename)
    for _, manifest in manifests:
        if isinstance(manifest, Workflow):
            result = store.apply_workflow(manifest)
            render.console.print(f"workflow.tideflow.dev/{manifest.metadata.name} {result}")
    for _, manifest in manifests:
        if isinstance(manifest, WorkflowRun):
            render.console.print(
                f"workflowrun.tideflow.dev/{manifest.metadata.name} {_apply_run(store, manifest)}"
            )


def _apply_run(store: Store, manifest: WorkflowRun) -> str:
    meta, spec = manifest.metadata, manifest.spec
    try:
        existing = store.get_run(meta.namespace, meta.name)
    except NotFoundError:
        workflow = store.get_workflow(meta.namespace, spec.workflow_ref.name).workflow
        control.submit_run(store, workflow, spec.params, name=meta.name, desired=spec.desired_state)
        return "created"
    if existing.desired_state is spec.desired_state:
        return "unchanged"
    action = {"Running": "resume", "Paused": "pause", "Terminated": "terminate"}
    control.request(store, meta.namespace, meta.name, action[spec.desired_state.value])  # type: ignore[arg-type]
    return "configured"


def _params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    problems: list[Problem] = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            problems.append(Problem(f"-p {value}", "expected NAME=VALUE"))
        else:
            params[key] = val
    if problems:
        raise ValidationError(problems)
    return params


@app.command()
def run(
    workflow: Annotated[str | None, typer.Argument(help="Name of an applied workflow.")] = None,
    filename: Annotated[
        Path | None,
        typer.Option("--filename", "-f", help="Apply this manifest and run its workflow."),
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Run name (default: generated).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Execute here and follow to the end.")
    ] = False,
) -> None:
    """Start a run. Without --wait a `tideflow server` executes it."""
    store = state.store()
    if (workflow is None) == (filename is None):
        raise ValidationError([Problem("run", "give a workflow name or -f FILE (one of them)")])
    if filename is not None:
        workflows = [m for _, m in _load([filename]) if isinstance(m, Workflow)]
        if len(workflows) != 1:
            raise ValidationError(
                [
                    Problem(
                        "", f"expected exactly one Workflow, found {len(workflows)}", str(filename)
                    )
                ]
            )
        definition = workflows[0]
        store.apply_workflow(definition)
    else:
        assert workflow is not None
        definition = store.get_workflow(state.namespace, workflow).workflow
    record = control.submit_run(store, definition, _params(param or []), name=name)
    if not wait:
        render.console.print(record.name, markup=False)
        return
    from tideflow.cli.waiting import wait_for

    raise typer.Exit(wait_for(store, state.settings(), record))


# -- reading state ---------------------------------------------------------------------


class Kind(StrEnum):
    WORKFLOWS = "workflows"
    WORKFLOW = "workflow"
    RUNS = "runs"
    RUN = "run"
    TASKS = "tasks"


@app.command()
def get(
    kind: Annotated[Kind, typer.Argument(help="workflows, runs, run NAME or tasks RUN.")],
    name: Annotated[str | None, typer.Argument()] = None,
    output: OutputOption = Output.TABLE,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Runs of this workflow.")
    ] = None,
) -> None:
    """List workflows, runs or the tasks of a run."""
    store = state.store()
    now = utcnow()
    ns = state.namespace
    if kind in (Kind.WORKFLOWS, Kind.WORKFLOW):
        records = [store.get_workflow(ns, name)] if name else store.list_workflows(ns)
        if output is Output.TABLE:
            render.table(
                ["NAMESPACE", "NAME", "TASKS", "GENERATION", "AGE"],
                [render.workflow_row(r, now) for r in records],
            )
        else:
            docs = [to_document(r.workflow) for r in records]
            render.emit(docs[0] if name else docs, output)
    elif kind in (Kind.RUNS, Kind.RUN):
        runs = [store.get_run(ns, name)] if name else store.list_runs(ns, workflow)
        if output is Output.TABLE:
            render.table(
                ["NAMESPACE", "NAME", "WORKFLOW", "PHASE", "DESIRED", "AGE", "DURATION"],
                [render.run_row(r, now) for r in runs],
            )
        else:
            docs = [render.run_document(r, store.list_tasks(r.id)) for r in runs]
            render.emit(docs[0] if name else docs, output)
    else:
        if name is None:
            raise ValidationError([Problem("get tasks", "name the run: tideflow get tasks RUN")])
        tasks = store.list_tasks(store.get_run(ns, name).id)
        if output is Output.TABLE:
            render.table(
                ["TASK", "PHASE", "ATTEMPT", "DURATION", "OUTPUT", "ERROR"],
                [render.task_row(t) for t in tasks],
            )
        else:
            render.emit([render.task_document(t) for t in tasks], output)


@app.command()
def describe(
    kind: Annotated[str, typer.Argument(help="run")],
    name: Annotated[str, typer.Argument()],
) -> None:
    """Show a run in detail: status, parameters, tasks and errors."""
    if kind != "run":
        raise ValidationError(
            [Problem("describe", f"unknown kind {kind!r}; try: describe run NAME")]
        )
    store = state.store()
    run_record = store.get_run(state.namespace, name)
    tasks = store.list_tasks(run_record.id)
    document = render.run_document(run_record, tasks)
    render.emit(
        {"metadata": document["metadata"], "spec": document["spec"], "status": document["status"]},
        Output.YAML,
    )
    render.console.print()
    render.table(
        ["TASK", "PHASE", "ATTEMPT", "DURATION", "OUTPUT", "ERROR"],
        [render.task_row(t) for t in tasks],
    )


@app.command()
def logs(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    task: Annotated[str | None, typer.Argument()] = None,
    attempt: Annotated[int | None, typer.Option("--attempt", help="Only this attempt.")] = None,
) -> None:
    """Print what the attempts of a run (or of one task) wrote."""
    store = state.store()
    record = store.get_run(state.namespace, run_name)
    if task is not None:
        instances = store.list_tasks(record.id)
        if task not in {t.name for t in instances} | {t.task for t in instances}:
            raise NotFoundError(f'task "{task}" not found in run "{run_name}"')
    header = None
    for line in store.get_logs(record.id, task):
        if attempt is not None and line.attempt != attempt:
            continue
        current = (line.task, line.attempt)
        if current != header:
            header = current
            render.console.print(
                f"==> {line.task} attempt {line.attempt} <==", style="bold", markup=False
            )
        render.console.print(line.text.rstrip("\n"), markup=False, highlight=False)


# -- control -----------------------------------------------------------------------------


def _control(name: str, action: Action) -> None:
    before = control.request(state.store(), state.namespace, name, action)
    render.console.print(f"run {before.name}: {action} requested", markup=False)


@app.command()
def pause(name: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Start nothing new; running tasks finish."""
    _control(name, "pause")


@app.command()
def resume(name: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Continue a paused run."""
    _control(name, "resume")


@app.command()
def terminate(name: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Cancel running tasks and end the run as Terminated."""
    _control(name, "terminate")


@app.command()
def retry(
    name: Annotated[str, typer.Argument(metavar="RUN")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Execute here and follow to the end.")
    ] = False,
) -> None:
    """Run the failed, upstream-failed and terminated tasks of a finished run again."""
    _control(name, "retry")
    if wait:
        from tideflow.cli.waiting import wait_for

        store = state.store()
        raise typer.Exit(wait_for(store, state.settings(), store.get_run(state.namespace, name)))


# -- engine and database ---------------------------------------------------------------------


@app.command()
def server() -> None:
    """Run the engine: claim runs from the database and execute them until stopped."""
    from tideflow.cli.waiting import build_engine

    settings = state.settings()
    engine = build_engine(state.store(), settings)
    logging.getLogger("tideflow").setLevel(
        min(logging.INFO, logging.getLevelName(settings.log_level))
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        render.errors.print(
            f"tideflow server {engine.owner} on {_safe_url(settings.database.url)}", markup=False
        )
        await engine.serve(stop)

    asyncio.run(serve())


def _safe_url(url: str) -> str:
    from tideflow.storage.database import parse_url, safe_url

    return safe_url(parse_url(url))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all schema migrations to the configured database."""
    from tideflow.storage.migrating import upgrade

    url = state.settings().database.url
    upgrade(url)
    render.console.print(f"database {_safe_url(url)} is at the latest schema", markup=False)


@db_app.command("schema")
def db_schema(
    dialect: Annotated[str, typer.Option("--dialect", help="sqlite, postgresql or mysql.")],
) -> None:
    """Print the DDL of the schema for one SQL dialect."""
    from tideflow.storage.migrating import schema_sql

    render.console.print(schema_sql(dialect), markup=False, highlight=False)


# -- entry point ---------------------------------------------------------------------------

_EXIT = {ValidationError: 2, NotFoundError: 2, ConflictError: 2, StorageError: 3}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error class maps to one exit status here."""
    # Task functions ("examples.quant:fetch_bars") import from the current
    # directory, as they would under `python -m`.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code: Any = app(args=argv, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        render.errors.print("aborted")
        return 130
    except TideflowError as exc:
        status = next((code for kind, code in _EXIT.items() if isinstance(exc, kind)), 1)
        problems = exc.problems if isinstance(exc, ValidationError) else None
        if problems:
            for problem in problems:
                render.errors.print(f"error: {problem}", markup=False)
        else:
            render.errors.print(f"error: {exc}", markup=False)
        return status
    return int(code or 0)


def entry() -> None:
    sys.exit(main())
