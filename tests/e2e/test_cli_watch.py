"""``get -w`` and ``logs -f``: changes printed as they happen, ending with the run."""

from __future__ import annotations

import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.cli import spawn, stop, tideflow

T = "tests.integration.tasks"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'watch.db'}"


def _gated_flow(tmp_path: Path, gate: Path) -> Path:
    path = tmp_path / "gated.yaml"
    path.write_text(
        textwrap.dedent(f"""\
            apiVersion: tideflow.dev/v1alpha1
            kind: Workflow
            metadata: {{name: gated}}
            spec:
              tasks:
                - name: talk
                  command:
                    - sh
                    - -c
                    - 'echo first line; while [ ! -e {gate} ]; do sleep 0.1; done; echo last line'
                - {{name: after, dependsOn: [talk], function: {T}:echo, args: {{value: 1}}}}
            """),
        encoding="utf-8",
    )
    return path


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _phase_of(log: Path, name: str) -> str | None:
    """The last phase a watch printed for ``name`` (the second column of a task row,
    the fourth of a run row)."""
    column = 1 if "TASK" in log.read_text().split("\n", 1)[0] else 3
    rows = [line.split() for line in log.read_text().splitlines()]
    phases = [row[column] for row in rows if name in row[:2] and len(row) > column]
    return phases[-1] if phases else None


def test_watching_one_run_prints_each_change_and_ends_with_the_run(tmp_path: Path, db: str) -> None:
    gate = tmp_path / "gate"
    flow = _gated_flow(tmp_path, gate)
    assert tideflow("run", "-f", str(flow), "--name", "w-1", db=db, cwd=tmp_path).code == 0
    run_watch = spawn("get", "run", "w-1", "-w", db=db, cwd=tmp_path)
    task_watch = spawn("get", "tasks", "w-1", "-w", db=db, cwd=tmp_path)
    follow = spawn("logs", "w-1", "talk", "-f", db=db, cwd=tmp_path)
    server = spawn("server", db=db, cwd=tmp_path)
    try:
        _until(lambda: _phase_of(tmp_path / "get-1.log", "talk") == "Running")
        _until(lambda: _phase_of(tmp_path / "get-0.log", "w-1") == "Running")
        gate.touch()
        # Each watcher stops by itself once what it watches has ended.
        assert run_watch.wait(30) == 0
        assert task_watch.wait(30) == 0
        assert follow.wait(30) == 0
    finally:
        stop(server)
        for proc in (run_watch, task_watch, follow):
            if proc.poll() is None:
                proc.kill()
    runs = (tmp_path / "get-0.log").read_text().splitlines()
    assert runs[0].split()[:4] == ["NAMESPACE", "NAME", "WORKFLOW", "PHASE"]
    phases = [line.split()[3] for line in runs[1:]]
    assert phases[0] in ("Pending", "Running") and phases[-1] == "Succeeded"
    assert "Running" in phases
    tasks = (tmp_path / "get-1.log").read_text()
    assert "talk" in tasks and "after" in tasks and tasks.count("Succeeded") == 2
    logs = (tmp_path / "logs-0.log").read_text()
    assert "==> talk attempt 1 <==" in logs
    assert logs.index("first line") < logs.index("last line")


def test_watching_runs_shows_new_runs_until_interrupted(tmp_path: Path, db: str) -> None:
    flow = _gated_flow(tmp_path, tmp_path / "gate")
    assert tideflow("apply", "-f", str(flow), db=db, cwd=tmp_path).code == 0
    watch = spawn("get", "runs", "-w", db=db, cwd=tmp_path)
    try:
        time.sleep(1.0)
        assert tideflow("run", "gated", "--name", "new-1", db=db, cwd=tmp_path).code == 0
        _until(lambda: "new-1" in (tmp_path / "get-0.log").read_text())
        watch.send_signal(signal.SIGINT)
        assert watch.wait(10) == 130
    finally:
        if watch.poll() is None:
            watch.kill()
    output = (tmp_path / "get-0.log").read_text()
    assert "new-1" in output and "Traceback" not in output
