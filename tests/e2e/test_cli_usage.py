"""No command line produces a traceback: every usage error is one line, a hint, and exit 2.

The enumeration walks the command tree of the app itself, so a command added
later is covered without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tests.e2e.cli import tideflow
from tideflow import __version__
from tideflow.cli import cli, main


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = sorted(_commands(cli))


def test_the_enumeration_sees_every_verb() -> None:
    names = {path[0] for path in COMMANDS}
    expected = {"validate", "apply", "delete", "run", "get", "describe", "logs"}
    assert expected | {"pause", "resume", "terminate", "retry", "server", "db", "version"} <= names
    assert ("db", "schema") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("bad", [["--bogus-option"], ["-o", "xml"]], ids=["bogus", "bad-output"])
def test_every_command_refuses_bad_options_with_exit_2_and_no_traceback(
    path: tuple[str, ...], bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*path, *bad])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: "), err
    assert lines[-1].startswith("usage: tideflow"), err
    assert len(lines) == 2, err


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_h(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "-h"]) == 0
    assert "Usage: tideflow" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "Missing option '-f' / '--filename'"),
        (["get", "pods"], 'unknown kind "pods"; use workflows, runs, tasks or pools'),
        (["get", "runs", "-o", "xml"], "'xml' is not one of"),
        (["frobnicate"], 'unknown command "frobnicate"'),
        (["gett", "runs"], 'unknown command "gett" (did you mean "get"?)'),
        (["run", "wf", "--name", "Bad_Name"], "invalid name 'Bad_Name'"),
        (["get", "runs", "-n", "BAD"], "invalid name 'BAD'"),
        (["-n", "BAD", "get", "runs"], "invalid name 'BAD'"),
        (["get", "runs", "--phase", "sleeping"], "'sleeping' is not one of"),
        (["get", "runs", "--limit", "0"], "--limit"),
        (["get", "runs", "-l", "team in (a"], "invalid label selector clause"),
        (["logs"], "Missing argument 'RUN'"),
        (["db", "schema", "--dialect", "oracle"], "'oracle' is not one of"),
        (["--show-completion", "tcsh"], "'tcsh' is not one of"),
    ],
)
def test_usage_errors_say_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["--db", f"sqlite:///{tmp_path / 'x.db'}", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_version_and_help_work_as_a_new_user_tries_them(tmp_path: Path) -> None:
    for argv in (["--version"], ["version"]):
        result = tideflow(*argv, db="", cwd=tmp_path)
        assert (result.code, result.out.strip()) == (0, f"tideflow {__version__}")
    for argv in (["-h"], ["--help"], []):
        result = tideflow(*argv, db="", cwd=tmp_path)
        assert result.code == 0 and "Commands:" in result.out and "get" in result.out


def test_global_options_work_after_the_subcommand_too(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'after.db'}"
    before = tideflow("--db", db, "-n", "quant", "-o", "json", "get", "runs", db="", cwd=tmp_path)
    after = tideflow("get", "runs", "--db", db, "-n", "quant", "-o", "json", db="", cwd=tmp_path)
    assert before.code == after.code == 0, before.err + after.err
    assert before.out.strip() == after.out.strip() == "[]"
    assert (tmp_path / "after.db").exists()


def test_shell_completion_installs_and_completes_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shown = tideflow("--show-completion", "bash", db="", cwd=tmp_path)
    assert shown.code == 0 and "_TIDEFLOW_COMPLETE" in shown.out
    installed = tideflow("--install-completion", "bash", db="", cwd=tmp_path, HOME=str(home))
    assert installed.code == 0, installed.err
    script = home / ".bash_completions" / "tideflow.sh"
    assert script.read_text() == shown.out
    assert "source ~/.bash_completions/tideflow.sh" in (home / ".bashrc").read_text()
    # What the shell does on <TAB> after "tideflow ge":
    completed = tideflow(
        db="",
        cwd=tmp_path,
        _TIDEFLOW_COMPLETE="bash_complete",
        COMP_WORDS="tideflow ge",
        COMP_CWORD="1",
    )
    assert completed.code == 0
    assert "plain,get" in completed.out.splitlines()


def test_run_names_complete_from_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'names.db'}"
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "apiVersion: tideflow.dev/v1alpha1\nkind: Workflow\nmetadata: {name: names}\n"
        "spec: {tasks: [{name: a, command: [echo]}]}\n",
        encoding="utf-8",
    )
    for name in ("eod-1", "eod-2", "adhoc-1"):
        assert tideflow("run", "-f", str(flow), "--name", name, db=db, cwd=tmp_path).code == 0
    completed = tideflow(
        db=db,
        cwd=tmp_path,
        _TIDEFLOW_COMPLETE="bash_complete",
        COMP_WORDS="tideflow logs eod",
        COMP_CWORD="2",
    )
    assert completed.code == 0, completed.err
    assert sorted(completed.out.splitlines()) == ["plain,eod-1", "plain,eod-2"]
