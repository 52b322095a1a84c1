"""Adopting a run whose engine died: the executor may reattach to attempts still running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.integration.enginekit import FAST, workflow
from tideflow.engine import control
from tideflow.engine.execution import Attempt, Outcome, Reattachment
from tideflow.engine.ports import Batch, RunRecord, utcnow
from tideflow.engine.reconciler import Engine
from tideflow.executors.local import LocalExecutor
from tideflow.model import RunPhase, TaskPhase, Workflow
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"


class FakeJobs:
    """An executor whose attempts outlive their engine (like Kubernetes Jobs).

    ``execute`` runs attempts locally and records them; ``reattach`` answers
    with ``answer(attempt)`` and records what it was asked.
    """

    def __init__(self, answer: Callable[[Attempt], Reattachment]) -> None:
        self._local = LocalExecutor(threads=4)
        self._answer = answer
        self.executed: list[tuple[str, int]] = []
        self.asked: list[Attempt] = []

    async def execute(self, attempt: Attempt) -> Outcome:
        self.executed.append((attempt.task, attempt.number))
        return await self._local.execute(attempt)

    async def reattach(self, attempt: Attempt) -> Reattachment:
        self.asked.append(attempt)
        return self._answer(attempt)

    def close(self) -> None:
        self._local.close()


def _flow(**spec: Any) -> Workflow:
    return workflow(
        {"name": "job", "command": ["sh", "-c", "echo should-not-run; exit 1"]},
        {
            "name": "after",
            "function": f"{T}:echo",
            "dependsOn": ["job"],
            "args": {"value": "{{ tasks['job'].output }}"},
        },
        {"name": "other", "function": f"{T}:echo", "args": {"value": "other"}},
        **spec,
    )


def _died_running(store: SqlStore, wf: Workflow, task: str = "job") -> RunRecord:
    """A run that an engine claimed, whose ``task`` it started as attempt 1 before it
    died; its lease has expired."""
    run = control.submit_run(store, wf)
    past = utcnow() - timedelta(minutes=5)
    expired = past + timedelta(seconds=30)
    assert store.claim_run(run.id, "dead-engine", past, expired) is not None
    [record] = [t for t in store.list_tasks(run.id) if t.name == task]
    record.phase, record.attempt, record.started_at = TaskPhase.RUNNING, 1, past
    assert store.commit(Batch("dead-engine", expired, task_updates=[record])) == set()
    return run


async def test_an_attempt_that_ended_while_its_engine_was_dead_is_not_run_again(
    store: SqlStore,
) -> None:
    run = _died_running(store, _flow())
    jobs = FakeJobs(lambda attempt: Outcome("succeeded", output=42, logs=[("stdout", "42\n")]))
    final = await Engine(store, jobs, FAST).drive(run.id)

    assert final.phase is RunPhase.SUCCEEDED
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["job"].phase, tasks["job"].attempt, tasks["job"].output) == (
        TaskPhase.SUCCEEDED,
        1,
        42,
    )
    assert tasks["after"].output == 42
    # Asked once, about attempt 1 as it was started; never executed again.
    assert [(a.task, a.number, a.command) for a in jobs.asked] == [
        ("job", 1, ["sh", "-c", "echo should-not-run; exit 1"])
    ]
    assert ("job", 1) not in jobs.executed and ("job", 2) not in jobs.executed
    assert sorted(jobs.executed) == [("after", 1), ("other", 1)]
    assert [(log.attempt, log.text) for log in store.get_logs(run.id, "job")] == [(1, "42\n")]


async def test_a_reattached_attempt_still_running_holds_its_slot_until_it_ends(
    store: SqlStore,
) -> None:
    run = _died_running(store, _flow(parallelism=1))
    release = asyncio.Event()

    async def follow() -> Outcome:
        await release.wait()
        return Outcome("succeeded", output=7)

    jobs = FakeJobs(lambda attempt: follow())
    engine = Engine(store, jobs, FAST)
    driving = asyncio.create_task(engine.drive(run.id))
    await asyncio.sleep(0.5)  # many ticks: `other` would have started if a slot were free
    assert jobs.executed == []
    assert {t.name: t.phase for t in store.list_tasks(run.id)}["job"] is TaskPhase.RUNNING
    release.set()
    final = await asyncio.wait_for(driving, 20)

    assert final.phase is RunPhase.SUCCEEDED
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["job"].attempt, tasks["job"].output, tasks["after"].output) == (1, 7, 7)
    assert sorted(jobs.executed) == [("after", 1), ("other", 1)]
    started, finished = tasks["other"].started_at, tasks["job"].finished_at
    assert started is not None and finished is not None and started >= finished


async def test_an_attempt_the_executor_cannot_reattach_to_runs_again_as_before(
    store: SqlStore,
) -> None:
    wf = workflow(
        {"name": "job", "command": ["sh", "-c", "echo 5"]},
        {"name": "after", "function": f"{T}:echo", "dependsOn": ["job"], "args": {"value": 1}},
    )
    run = _died_running(store, wf)
    jobs = FakeJobs(lambda attempt: None)
    final = await Engine(store, jobs, FAST).drive(run.id)

    assert final.phase is RunPhase.SUCCEEDED
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["job"].attempt, tasks["job"].output) == (2, 5)
    assert [a.number for a in jobs.asked] == [1]
    assert jobs.executed == [("job", 2), ("after", 1)]
    assert [(log.attempt, log.text) for log in store.get_logs(run.id, "job")] == [
        (1, "attempt 1 was lost with its engine; it runs again as a new attempt\n"),
        (2, "5\n"),
    ]


async def test_a_reattached_attempt_that_failed_is_retried_as_the_next_attempt(
    store: SqlStore,
) -> None:
    wf = workflow(
        {
            "name": "job",
            "command": ["sh", "-c", "echo 9"],
            "retry": {"limit": 1, "backoff": {"seconds": 0.01}},
        },
    )
    run = _died_running(store, wf)
    jobs = FakeJobs(lambda attempt: Outcome("failed", error="Job failed: OOMKilled"))
    final = await Engine(store, jobs, FAST).drive(run.id)

    assert final.phase is RunPhase.SUCCEEDED
    [job] = store.list_tasks(run.id)
    assert (job.attempt, job.output) == (2, 9)
    assert jobs.executed == [("job", 2)]
