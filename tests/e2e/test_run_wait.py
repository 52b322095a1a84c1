"""``tideflow run --wait`` as a user sees it: stopping it, and what it prints.

SIGTERM or SIGINT to ``run --wait`` hands the run back at once: a server
continues it right away instead of waiting for the lease (30 s here) to
expire. The terminal shows progress and failures, never what tasks log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.cli import cli_env, spawn, stop, tideflow
from tests.integration.enginekit import alive
from tideflow.engine import control
from tideflow.model import RunPhase, Workflow
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"
#: A lease long enough that a run left to expire could not be continued within the test's bound.
LEASE = {"TIDEFLOW_ENGINE__LEASE_SECONDS": "30"}


def _manifest(tmp_path: Path, ledger: Path, pid_file: Path) -> Path:
    """``first`` -> ``long`` -> ``after``; each appends ``NAME ATTEMPT`` to the
    ledger. Attempt 1 of ``long`` runs until killed, with a child process whose
    pid it writes to ``pid_file``; its later attempts end at once."""
    long = (
        f'echo "long $TIDEFLOW_ATTEMPT" >> {ledger}; '
        f'if [ "$TIDEFLOW_ATTEMPT" = 1 ]; then sleep 60 & echo $! > {pid_file}; wait; fi'
    )
    path = tmp_path / "handover.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: handover}}
        spec:
          tasks:
            - {{name: first, function: {T}:append, args: {{path: "{ledger}", name: first}}}}
            - name: long
              dependsOn: [first]
              command: [sh, -c, {json.dumps(long)}]
            - name: after
              dependsOn: [long]
              function: {T}:append
              args: {{path: "{ledger}", name: after}}
        """),
        encoding="utf-8",
    )
    return path


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _server_up(store: SqlStore) -> bool:
    """Submit a trivial run and report whether a server executed it (it is up and polling)."""
    try:
        run = store.get_run("default", "canary")
    except Exception:
        canary = Workflow.model_validate(
            {
                "metadata": {"name": "canary"},
                "spec": {"tasks": [{"name": "a", "function": f"{T}:echo", "args": {"value": 1}}]},
            }
        )
        run = control.submit_run(store, canary, name="canary")
    return run.phase is RunPhase.SUCCEEDED


def _interrupt_and_hand_over(database_url: str, tmp_path: Path, sig: signal.Signals) -> str:
    """Stop ``run --wait`` with ``sig`` mid-run beside a server; check the hand-over
    and return what ``run --wait`` wrote on stderr."""
    ledger, pid_file = tmp_path / "ledger", tmp_path / "pid"
    manifest = _manifest(tmp_path, ledger, pid_file)
    name = "handover-x7k2"
    out, err = tmp_path / "wait.out", tmp_path / "wait.err"
    store = SqlStore.from_url(database_url)
    server = None
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        argv = ["run", "-f", str(manifest), "--name", name, "--wait"]
        waiting = subprocess.Popen(
            [sys.executable, "-m", "tideflow", *argv],
            cwd=tmp_path,
            env=cli_env(database_url, **LEASE),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        # `run --wait` owns the run and `long` is running, child process and all.
        _until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        waiter = store.get_run("default", name).owner
        assert waiter is not None
        # Only now a server: it cannot take a run whose lease is held.
        server = spawn("server", db=database_url, cwd=tmp_path, **LEASE)
        _until(lambda: _server_up(store))
        assert store.get_run("default", name).owner == waiter

        waiting.send_signal(sig)
        assert waiting.wait(20) == 128 + sig
        stopped = time.monotonic()

        def adopted() -> bool:
            run = store.get_run("default", name)
            return run.phase.finished or run.owner not in (None, waiter)

        # Continued at once: well within the 30 s the lease would have taken.
        _until(adopted, timeout=30)
        assert time.monotonic() - stopped < 3
        _until(lambda: store.get_run("default", name).phase.finished, timeout=30)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        if server is not None:
            stop(server)
        store.close()

    run = json.loads(tideflow("get", "run", name, "-o", "json", db=database_url, cwd=tmp_path).out)
    assert run["status"]["phase"] == "Succeeded"
    got = tideflow("get", "tasks", name, "-o", "json", db=database_url, cwd=tmp_path).out
    tasks = {t["name"]: t for t in json.loads(got)}
    assert {n: (t["phase"], t["attempt"]) for n, t in tasks.items()} == {
        "first": ("Succeeded", 1),
        "long": ("Succeeded", 2),
        "after": ("Succeeded", 1),
    }
    # Finished tasks were not run again; the interrupted one ran once more; its
    # process and the process's child were killed.
    assert ledger.read_text().splitlines() == ["first 1", "long 1", "long 2", "after 1"]
    assert not alive(int(pid_file.read_text()))
    return err.read_text()


def _check_message(stderr: str, name: str) -> None:
    line = (
        f'run {name} handed back: a server will continue it; "tideflow terminate {name}" stops it'
    )
    assert line in stderr.splitlines(), stderr
    assert stderr.count("handed back") == 1, stderr
    assert "Traceback" not in stderr, stderr


def test_sigterm_hands_the_run_back_and_a_server_continues_it_at_once(
    database_url: str, tmp_path: Path
) -> None:
    stderr = _interrupt_and_hand_over(database_url, tmp_path, signal.SIGTERM)
    _check_message(stderr, "handover-x7k2")


def test_ctrl_c_hands_the_run_back_and_exits_130(tmp_path: Path) -> None:
    stderr = _interrupt_and_hand_over(f"sqlite:///{tmp_path / 'int.db'}", tmp_path, signal.SIGINT)
    _check_message(stderr, "handover-x7k2")


def test_the_terminal_shows_progress_and_failures_but_not_what_tasks_log(
    tmp_path: Path,
) -> None:
    path = tmp_path / "noisy.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: noisy}}
        spec:
          tasks:
            - {{name: chatty, function: {T}:chatty}}
            - {{name: boom, function: {T}:boom}}
            - {{name: after, function: {T}:echo, dependsOn: [boom], args: {{value: 1}}}}
        """),
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'noisy.db'}"
    # Even with the engine's log at DEBUG, task lines stay off the terminal.
    result = tideflow(
        "run", "-f", str(path), "--name", "n-1", "--wait", db=db, cwd=tmp_path,
        TIDEFLOW_LOG_LEVEL="DEBUG",
    )  # fmt: skip
    assert result.code == 1
    assert "✗ boom (attempt 1): RuntimeError: boom" in result.err.splitlines()
    assert "run n-1 Failed" in result.out
    assert "1 Succeeded, 1 Failed, 1 UpstreamFailed" in result.out
    for stream in (result.out, result.err):
        assert "hello from" not in stream
    got = tideflow("get", "tasks", "n-1", "-o", "json", db=db, cwd=tmp_path).out
    assert {t["name"]: t["phase"] for t in json.loads(got)} == {
        "chatty": "Succeeded",
        "boom": "Failed",
        "after": "UpstreamFailed",
    }
    # What the task printed and logged is in the database, with its attempt.
    store = SqlStore.from_url(db)
    try:
        run = store.get_run("default", "n-1")
        lines = "".join(log.text for log in store.get_logs(run.id, "chatty"))
    finally:
        store.close()
    assert "hello from print" in lines and "hello from the task logger" in lines


def test_verbose_streams_what_tasks_log_but_keeps_their_prints_in_the_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "verbose.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        apiVersion: tideflow.dev/v1alpha1
        kind: Workflow
        metadata: {{name: verbose}}
        spec:
          tasks:
            - {{name: chatty, function: {T}:chatty}}
        """),
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'verbose.db'}"
    result = tideflow("run", "-f", str(path), "--name", "v-1", "--wait", "-v", db=db, cwd=tmp_path)
    assert result.code == 0, result.err
    # -v echoes the task's log records (the task logger's INFO too, though the
    # engine's level is WARNING), labelled with the task; prints stay in the log.
    assert "chatty: INFO tideflow.task: hello from the task logger" in result.err
    assert "hello from print" not in result.out + result.err
    store = SqlStore.from_url(db)
    try:
        run = store.get_run("default", "v-1")
        lines = "".join(log.text for log in store.get_logs(run.id, "chatty"))
    finally:
        store.close()
    assert lines.count("hello from the task logger") == 1
    assert "hello from print" in lines
