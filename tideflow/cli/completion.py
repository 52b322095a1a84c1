"""Shell completion: ``--show-completion`` / ``--install-completion``, and names from the database.

Completion itself is click's: the shell calls ``tideflow`` with
``_TIDEFLOW_COMPLETE=<shell>_complete`` set, and click answers with the
commands, options and choices of the command line. Run and workflow names are
completed from the configured database when that is cheap (one indexed read of
at most a few hundred names); any problem there completes nothing rather than
printing an error into the user's prompt.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem, get_completion_class

F = TypeVar("F", bound=Callable[..., Any])

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_TIDEFLOW_COMPLETE"
#: Names offered at most, newest runs first.
MAX_NAMES = 200


def _detect_shell() -> str:
    shell = Path(os.environ.get("SHELL", "")).name
    if shell not in SHELLS:
        raise click.UsageError(
            f"cannot tell the shell (SHELL={shell or 'unset'}); name it: "
            f"--show-completion {'|'.join(SHELLS)}"
        )
    return shell


def script(shell: str) -> str:
    """The completion script that makes ``shell`` complete ``tideflow``."""
    from tideflow.cli.app import cli

    kind = get_completion_class(shell)
    if kind is None:
        raise click.UsageError(f"no completion for shell {shell!r}; use one of {', '.join(SHELLS)}")
    return kind(cli, {}, "tideflow", COMPLETE_VAR).source()


#: Where ``--install-completion`` puts the script, and the rc line that loads it.
_TARGETS = {
    "bash": (".bash_completions/tideflow.sh", ".bashrc", "source ~/.bash_completions/tideflow.sh"),
    "zsh": (".zfunc/_tideflow", ".zshrc", "fpath+=~/.zfunc; autoload -Uz compinit; compinit"),
    "fish": (".config/fish/completions/tideflow.fish", None, None),
}


def install(shell: str, home: Path) -> Path:
    """Write the script for ``shell`` under ``home`` and load it from the shell's rc file."""
    relative, rc_name, line = _TARGETS[shell]
    target = home / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(script(shell), encoding="utf-8")
    if rc_name is not None and line is not None:
        rc = home / rc_name
        existing = rc.read_text(encoding="utf-8") if rc.exists() else ""
        if line not in existing:
            with rc.open("a", encoding="utf-8") as out:
                out.write(f"\n{line}\n")
    return target


def _show(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    click.echo(script(value or _detect_shell()), nl=False)
    ctx.exit(0)


def _install(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    shell = value or _detect_shell()
    target = install(shell, Path.home())
    click.echo(f"{shell} completion installed in {target}; start a new shell to use it")
    ctx.exit(0)


def options(command: F) -> F:
    """``--show-completion [SHELL]`` and ``--install-completion [SHELL]`` for the root group."""
    for flag, callback, text in (
        ("--show-completion", _show, "Print the completion script for SHELL and exit."),
        ("--install-completion", _install, "Install completion for SHELL and exit."),
    ):
        command = click.option(
            flag,
            type=click.Choice(SHELLS),
            is_flag=False,
            flag_value="",
            default=None,
            expose_value=False,
            is_eager=True,
            callback=callback,
            metavar="[SHELL]",
            help=text + " (default: from $SHELL)",
        )(command)
    return command


def _names(kind: str, ctx: click.Context, incomplete: str) -> Iterator[CompletionItem]:
    from tideflow.cli.session import Session

    state = ctx.find_object(Session) or Session()
    try:
        settings = state.settings()
        from tideflow.storage.store import SqlStore

        store = SqlStore.from_url(settings.database.url)
        try:
            if kind == "workflow":
                names = [w.name for w in store.list_workflows(state.namespace)]
            else:
                names = [r.name for r in store.list_runs(state.namespace, limit=MAX_NAMES)]
        finally:
            store.close()
    except Exception:  # completion must never print into the prompt
        return
    for name in names:
        if name.startswith(incomplete):
            yield CompletionItem(name)


def run_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return list(_names("run", ctx, incomplete))


def workflow_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return list(_names("workflow", ctx, incomplete))


def kind_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Names for ``get KIND NAME``: workflows for workflow kinds, runs otherwise."""
    kind = str(ctx.params.get("kind") or "")
    return list(
        _names("workflow" if kind.startswith("w") and "run" not in kind else "run", ctx, incomplete)
    )


def any_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return kind_names(ctx, param, incomplete)
