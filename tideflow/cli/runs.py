"""Commands that start and steer runs: ``run``, ``pause``, ``resume``, ``terminate``, ``retry``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tideflow.cli import completion
from tideflow.cli.manifests import load
from tideflow.cli.render import console
from tideflow.cli.session import checked_name, global_options, session
from tideflow.definition.parameters import parse_assignments, read_params_file
from tideflow.engine.transitions import Action
from tideflow.errors import Problem, ValidationError
from tideflow.model import Workflow

CONTEXT = {"help_option_names": ["-h", "--help"]}

_VERBOSE = click.option(
    "-v", "--verbose", is_flag=True, help="Also stream the tasks' log lines to the terminal."
)


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return checked_name(value, "'--name'")


@click.command(context_settings=CONTEXT)
@click.argument("workflow", required=False, shell_complete=completion.workflow_names)
@click.option(
    "-f",
    "--filename",
    type=click.Path(path_type=Path),
    help="Apply this manifest and run its workflow.",
)
@click.option("-p", "--param", "assignments", multiple=True, metavar="NAME=VALUE")
@click.option(
    "--params-file",
    type=click.Path(path_type=Path),
    help="Parameters from a YAML or JSON mapping; -p values win over it.",
)
@click.option("--name", callback=_name, help="Run name (default: generated).")
@click.option("--wait", is_flag=True, help="Execute here and follow to the end.")
@_VERBOSE
@global_options
def run(
    workflow: str | None,
    filename: Path | None,
    assignments: tuple[str, ...],
    params_file: Path | None,
    name: str | None,
    wait: bool,
    verbose: bool,
) -> None:
    """Start a run of WORKFLOW (or of the one in -f FILE).

    Without --wait a `tideflow server` executes it and its name is printed;
    with --wait this process drives it with a progress bar, and exits 0 if it
    Succeeded, 1 otherwise. Parameters are converted to their declared types.
    """
    if (workflow is None) == (filename is None):
        raise click.UsageError("give a workflow name or -f FILE (one of them)")
    params: dict[str, Any] = read_params_file(params_file) if params_file else {}
    params.update(parse_assignments(list(assignments)))
    services = session().services()
    target: Workflow | str
    if filename is not None:
        workflows = [m for _, m in load([filename]) if isinstance(m, Workflow)]
        if len(workflows) != 1:
            found = f"expected exactly one Workflow, found {len(workflows)}"
            raise ValidationError([Problem("", found, str(filename))])
        target = workflows[0]
        services.apply(target)
    else:
        assert workflow is not None
        target = workflow
    record = services.submit(session().namespace, target, params, name=name)
    if not wait:
        console.print(record.name, markup=False)
        return
    from tideflow.cli.waiting import wait_for

    raise click.exceptions.Exit(wait_for(services, record, verbose=verbose))


def _control(name: str, action: Action) -> None:
    after = session().services().control(session().namespace, name, action)
    if action == "terminate" and after.phase.finished:
        # No engine owned the run, so the request itself terminated it.
        console.print(f"run {name}: {after.phase.value}", markup=False)
    else:
        console.print(f"run {name}: {action} requested", markup=False)


_RUN = click.argument("name", metavar="RUN", shell_complete=completion.run_names)


@click.command(context_settings=CONTEXT)
@_RUN
@global_options
def pause(name: str) -> None:
    """Start nothing new; running tasks finish."""
    _control(name, "pause")


@click.command(context_settings=CONTEXT)
@_RUN
@global_options
def resume(name: str) -> None:
    """Continue a paused run."""
    _control(name, "resume")


@click.command(context_settings=CONTEXT)
@_RUN
@global_options
def terminate(name: str) -> None:
    """Cancel running tasks and end the run as Terminated."""
    _control(name, "terminate")


@click.command(context_settings=CONTEXT)
@_RUN
@click.option("--wait", is_flag=True, help="Execute here and follow to the end.")
@_VERBOSE
@global_options
def retry(name: str, wait: bool, verbose: bool) -> None:
    """Run the failed, upstream-failed and terminated tasks of a finished run again,
    with everything downstream of them; succeeded tasks keep their outputs."""
    _control(name, "retry")
    if wait:
        from tideflow.cli.waiting import wait_for

        services = session().services()
        record = services.get(session().namespace, name)
        raise click.exceptions.Exit(wait_for(services, record, verbose=verbose))


COMMANDS = [run, pause, resume, terminate, retry]
