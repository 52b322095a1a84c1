"""Commands on manifests and stored objects: ``validate``, ``apply``, ``delete``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from tideflow.cli import completion
from tideflow.cli.render import console, errors
from tideflow.cli.session import KindType, checked_name, global_options, session
from tideflow.definition.loading import load_checked
from tideflow.engine import resources
from tideflow.errors import StorageError, TideflowError, ValidationError
from tideflow.model import Manifest, Workflow, WorkflowRun

CONTEXT = {"help_option_names": ["-h", "--help"]}

_FILES = click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Manifest file or directory (repeatable).",
)

RESOURCE = {"Workflow": "workflow.tideflow.dev", "WorkflowRun": "workflowrun.tideflow.dev"}


def load(paths: list[Path] | tuple[Path, ...]) -> list[tuple[str, Manifest]]:
    """Read and check manifests; raise with every problem of every file at once."""
    return load_checked(paths)


@click.command(context_settings=CONTEXT)
@_FILES
@global_options
def validate(paths: tuple[Path, ...]) -> None:
    """Check manifests; print every problem found (exit 2) or what is valid."""
    for source, manifest in load(paths):
        console.print(f"{source}: {manifest.kind} {manifest.metadata.name} is valid", markup=False)


@click.command(context_settings=CONTEXT)
@_FILES
@global_options
def apply(paths: tuple[Path, ...]) -> None:
    """Create or update workflows and runs, like kubectl apply.

    A WorkflowRun is created if it does not exist; re-applied with another
    desiredState it is paused, resumed or terminated; its params and
    workflowRef cannot change once it exists.
    """
    store = session().store()
    manifests = load(paths)
    for _, manifest in manifests:
        if isinstance(manifest, Workflow):
            result = store.apply_workflow(manifest)
            console.print(f"{RESOURCE['Workflow']}/{manifest.metadata.name} {result}")
    for source, manifest in manifests:
        if isinstance(manifest, WorkflowRun):
            try:
                result = resources.apply_run(store, manifest)
            except ValidationError as exc:
                raise ValidationError(
                    dataclasses.replace(p, source=p.source or source) for p in exc.problems
                ) from exc
            console.print(f"{RESOURCE['WorkflowRun']}/{manifest.metadata.name} {result}")


_KINDS = {"workflow": "workflow", "workflows": "workflow", "wf": "workflow"}
_KINDS |= {"run": "run", "runs": "run", "workflowrun": "run", "workflowruns": "run"}


@click.command(context_settings=CONTEXT)
@click.argument("kind", required=False, type=KindType(_KINDS, "workflow or run"), metavar="[KIND]")
@click.argument("names", nargs=-1, shell_complete=completion.any_names)
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Delete the objects these manifests define.",
)
@click.option("--force", is_flag=True, help="Terminate an unfinished run first, then delete it.")
@global_options
def delete(kind: str | None, names: tuple[str, ...], paths: tuple[Path, ...], force: bool) -> None:
    """Delete workflows or runs: delete workflow NAME, delete run NAME, delete -f FILE.

    Deleting a workflow leaves its runs (each has its own snapshot of it).
    Deleting a run removes its tasks, logs and history; an unfinished run is
    refused unless --force, which terminates it first.
    """
    targets: list[tuple[str, str, str]] = []  # (kind, namespace, name)
    if paths:
        if kind or names:
            raise click.UsageError("give either KIND NAME... or -f FILE, not both")
        for _, manifest in load(paths):
            what = "workflow" if isinstance(manifest, Workflow) else "run"
            targets.append((what, manifest.metadata.namespace, manifest.metadata.name))
    else:
        if kind is None or not names:
            raise click.UsageError("name what to delete: delete workflow NAME, delete run NAME")
        namespace = session().namespace
        for name in names:
            checked_name(name, "NAME")
            targets.append((kind, namespace, name))
    store = session().store()
    failed: list[TideflowError] = []
    # Runs first: a manifest file that holds a workflow and its runs deletes cleanly.
    for what, namespace, name in sorted(targets, key=lambda t: t[0] != "run"):
        try:
            if what == "run":
                resources.delete_run(store, namespace, name, force=force)
            else:
                store.delete_workflow(namespace, name)
        except StorageError:
            raise
        except TideflowError as exc:
            failed.append(exc)
            errors.print(f"error: {exc}", markup=False)
            continue
        resource = RESOURCE["WorkflowRun" if what == "run" else "Workflow"]
        console.print(f"{resource}/{name} deleted", markup=False)
    if failed:
        raise click.exceptions.Exit(2)


COMMANDS = [validate, apply, delete]
