"""The ``tideflow`` command line: the root group, and the one place errors become exit codes.

Exit status: 0 success; 1 a waited run failed or was terminated; 2 bad input
(a usage error, an invalid manifest or parameter, an unknown object, a
control request the state machine forbids); 3 the database or another
service could not be used; 130/143 interrupted by SIGINT/SIGTERM. The mapping
lives in :func:`main` only, and no command line produces a traceback.

Built on click directly rather than typer: typer 0.2x vendors its own copy of
click whose exceptions are private, so catching usage errors would depend on
typer's internals; click's API has been stable across the 8.x series, and it
gives persistent global options and name completion without workarounds.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tideflow.cli import completion, manifests, pools, reading, runs, serving
from tideflow.cli.render import errors
from tideflow.cli.session import Session, root_options
from tideflow.errors import (
    ConflictError,
    NotFoundError,
    StorageError,
    TideflowError,
    ValidationError,
    did_you_mean,
)
from tideflow.version import __version__


class _Group(click.Group):
    """Lists commands in the order they were added and suggests close matches."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            hint = did_you_mean(name, self.commands, cutoff=0.6)
            raise click.UsageError(f'unknown command "{name}"{hint}', ctx)
        return super().resolve_command(ctx, args)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@root_options
@click.group(
    cls=_Group,
    context_settings=CONTEXT,
    invoke_without_command=True,
    help="Workflow engine for quantitative data pipelines.",
)
@click.version_option(
    __version__, "--version", prog_name="tideflow", message="%(prog)s %(version)s"
)
@completion.options
@click.pass_context
def cli(ctx: click.Context) -> None:
    ctx.ensure_object(Session)
    ctx.call_on_close(ctx.obj.close)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@cli.command(context_settings=CONTEXT)
def version() -> None:
    """Print the version."""
    click.echo(f"tideflow {__version__}")


for group in (manifests, runs, reading, serving, pools):
    for command in group.COMMANDS:
        cli.add_command(command)


# -- entry point ---------------------------------------------------------------------

_EXIT = {ValidationError: 2, NotFoundError: 2, ConflictError: 2, StorageError: 3}


def _usage_error(exc: click.UsageError) -> None:
    errors.print(f"error: {exc.format_message()}", markup=False)
    ctx = exc.ctx
    if ctx is not None:
        pieces = " ".join(ctx.command.collect_usage_pieces(ctx))
        errors.print(
            f"usage: {ctx.command_path} {pieces}  (see '{ctx.command_path} -h')", markup=False
        )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error class maps to one exit status here."""
    # Task functions ("examples.quant:fetch_bars") import from the current
    # directory, as they would under `python -m`.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        code: Any = cli.main(
            args=argv,
            prog_name="tideflow",
            standalone_mode=False,
            complete_var="_TIDEFLOW_COMPLETE",
        )
    except click.UsageError as exc:
        _usage_error(exc)
        return 2
    except click.exceptions.Abort:
        errors.print("aborted", markup=False)
        return 130
    except click.ClickException as exc:
        errors.print(f"error: {exc.format_message()}", markup=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`tideflow get runs | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except TideflowError as exc:
        status = next((code for kind, code in _EXIT.items() if isinstance(exc, kind)), 1)
        problems = exc.problems if isinstance(exc, ValidationError) else None
        if problems:
            for problem in problems:
                errors.print(f"error: {problem}", markup=False)
        else:
            errors.print(f"error: {exc}", markup=False)
        return status
    except Exception as exc:  # a bug: say so in one line, keep the traceback for debugging
        if os.environ.get("TIDEFLOW_DEBUG"):
            raise
        errors.print(
            f"internal error: {type(exc).__name__}: {exc} "
            "(set TIDEFLOW_DEBUG=1 to see the traceback, and please report it)",
            markup=False,
        )
        return 1
    return int(code or 0)


def entry() -> None:
    sys.exit(main())
