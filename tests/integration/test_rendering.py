"""Attempts carry their inputs rendered: every templated field, on real databases."""

from __future__ import annotations

import os
from pathlib import Path

from tests.integration.enginekit import FAST, workflow
from tideflow.engine import control
from tideflow.engine.execution import Attempt, Executor, Outcome, Reattachment
from tideflow.engine.reconciler import Engine
from tideflow.executors.local import LocalExecutor
from tideflow.executors.routing import RoutingExecutor
from tideflow.model import ExecutorKind, RunPhase, TaskPhase
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"


class RecordingExecutor:
    """Stands in for the Kubernetes executor: keeps the attempts it is given."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    async def execute(self, attempt: Attempt) -> Outcome:
        self.attempts.append(attempt)
        return Outcome("succeeded", output="done")

    async def reattach(self, attempt: Attempt) -> Reattachment:
        return None

    def close(self) -> None:
        pass


def _engine(store: SqlStore, kubernetes: RecordingExecutor | None = None) -> Engine:
    executors: dict[ExecutorKind, Executor] = {ExecutorKind.LOCAL: LocalExecutor(threads=4)}
    if kubernetes is not None:
        executors[ExecutorKind.KUBERNETES] = kubernetes
    return Engine(store, RoutingExecutor(executors), FAST)


async def test_a_command_runs_in_its_rendered_working_dir_with_its_rendered_env(
    store: SqlStore, tmp_path: Path
) -> None:
    where = tmp_path / "work dir"
    where.mkdir()
    wf = workflow(
        {"name": "where", "command": ["pwd"], "workingDir": "{{ params.dir }}"},
        {
            "name": "greet",
            "command": ["sh", "-c", 'echo "$GREETING from $PWD"'],
            "env": {"GREETING": "hello {{ params.who }}"},
            "workingDir": "{{ params.dir }}",
        },
        params=[{"name": "dir"}, {"name": "who"}],
    )
    run = control.submit_run(store, wf, {"dir": str(where), "who": "world"})
    final = await _engine(store).drive(run.id)
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert final.phase is RunPhase.SUCCEEDED, {n: t.error for n, t in tasks.items()}
    assert tasks["where"].output == os.path.realpath(where)
    assert tasks["greet"].output == f"hello world from {where}"


async def test_a_working_dir_that_fails_to_render_fails_its_task_clearly(
    store: SqlStore,
) -> None:
    wf = workflow({"name": "a", "command": ["pwd"], "workingDir": "{{ params.missing }}"})
    run = control.submit_run(store, wf)
    final = await _engine(store).drive(run.id)
    task = store.list_tasks(run.id)[0]
    assert final.phase is RunPhase.FAILED
    assert (task.phase, task.attempt) == (TaskPhase.FAILED, 1)
    assert (task.error or "").startswith("cannot render the task's inputs: ")
    assert "params.missing" in (task.error or "")


async def test_a_container_reaches_its_executor_rendered(store: SqlStore) -> None:
    kubernetes = RecordingExecutor()
    wf = workflow(
        {"name": "list", "function": f"{T}:symbols", "args": {"n": 2}},
        {
            "name": "factors",
            "dependsOn": ["list"],
            "executor": "kubernetes",
            "workingDir": "/data/{{ params.day }}",
            "container": {
                "image": "ghcr.io/acme/factors:1.2",
                "command": ["python", "-m", "factors"],
                "args": ["--day", "{{ params.day }}", "--symbols", "{{ tasks['list'].output }}"],
                "env": {"DAY": "{{ params.day }}", "RETRIES": "{{ 1 + 2 }}"},
            },
        },
        params=[{"name": "day"}],
    )
    run = control.submit_run(store, wf, {"day": "2026-11-30"})
    final = await _engine(store, kubernetes).drive(run.id)
    assert final.phase is RunPhase.SUCCEEDED
    [attempt] = kubernetes.attempts
    assert attempt.container is not None
    assert attempt.container.image == "ghcr.io/acme/factors:1.2"
    assert attempt.container.command == ["python", "-m", "factors"]
    assert attempt.container.args == ["--day", "2026-11-30", "--symbols", "['S00', 'S01']"]
    assert attempt.container.env == {"DAY": "2026-11-30", "RETRIES": "3"}
    assert attempt.working_dir == "/data/2026-11-30"
    # The spec keeps the templates; only the attempt is rendered.
    assert attempt.spec.container is not None
    assert attempt.spec.container.args == [
        "--day",
        "{{ params.day }}",
        "--symbols",
        "{{ tasks['list'].output }}",
    ]
