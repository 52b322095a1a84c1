"""The engine end to end on real databases: DAG semantics, outputs, fan-out, task kinds."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.integration.enginekit import FAST, execute, workflow
from tideflow.engine import control
from tideflow.engine.reconciler import Engine
from tideflow.executors.routing import engine_executor
from tideflow.model import RunPhase, TaskPhase
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"


async def test_outputs_flow_downstream_through_templates(store: SqlStore) -> None:
    wf = workflow(
        {"name": "a", "function": f"{T}:add", "args": {"a": 1, "b": 2}},
        {
            "name": "b",
            "function": f"{T}:async_add",
            "dependsOn": ["a"],
            "args": {"a": "{{ tasks['a'].output }}", "b": "{{ params.offset }}"},
        },
        {
            "name": "c",
            "dependsOn": ["a", "b"],
            "command": [
                "python3",
                "-c",
                "import sys, json; print(json.dumps(sys.argv[1:]))",
                "{{ tasks['a'].output }}",
                "{{ tasks['b'].output }}",
            ],
        },
        params=[{"name": "offset", "type": "integer", "default": 10}],
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert [tasks[n].output for n in "abc"] == [3, 13, ["3", "13"]]
    assert all(t.attempt == 1 and t.phase is TaskPhase.SUCCEEDED for t in tasks.values())
    assert tasks["c"].started_at >= tasks["b"].finished_at >= tasks["a"].finished_at


async def test_for_each_fans_out_and_downstream_sees_outputs_in_index_order(
    store: SqlStore,
) -> None:
    wf = workflow(
        {"name": "list", "function": f"{T}:symbols", "args": {"n": 12}},
        {
            "name": "price",
            "function": f"{T}:price",
            "dependsOn": ["list"],
            "forEach": "{{ tasks['list'].output }}",
            "args": {"symbol": "{{ item }}"},
        },
        {
            "name": "collect",
            "function": f"{T}:echo",
            "dependsOn": ["price"],
            "args": {"value": "{{ tasks['price'].output }}"},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    children = [tasks[f"price[{i}]"] for i in range(12)]
    assert [c.item for c in children] == [f"S{i:02d}" for i in range(12)]
    expected = [{"symbol": f"S{i:02d}", "index": i, "price": 100 + i} for i in range(12)]
    assert tasks["price"].output == expected
    assert tasks["collect"].output == expected
    assert tasks["collect"].started_at >= max(c.finished_at for c in children)


async def test_for_each_over_an_empty_list_succeeds_with_an_empty_output(store: SqlStore) -> None:
    wf = workflow(
        {"name": "list", "function": f"{T}:symbols", "args": {"n": 0}},
        {
            "name": "price",
            "function": f"{T}:price",
            "dependsOn": ["list"],
            "forEach": "{{ tasks['list'].output }}",
            "args": {"symbol": "{{ item }}"},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert tasks["price"].output == []


async def test_a_task_spawns_sub_tasks_at_run_time(store: SqlStore) -> None:
    wf = workflow(
        {"name": "plan", "function": f"{T}:plan", "args": {"n": 4}},
        {
            "name": "sum",
            "function": f"{T}:echo",
            "dependsOn": ["plan"],
            "args": {"value": "{{ tasks['plan'].output | sum }}"},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert [tasks[f"plan[{i}]"].output for i in range(4)] == [100, 101, 102, 103]
    assert tasks["sum"].output == 406


async def test_failure_propagates_by_trigger_rule(store: SqlStore) -> None:
    wf = workflow(
        {"name": "fetch", "function": f"{T}:boom"},
        {"name": "clean", "function": f"{T}:echo", "dependsOn": ["fetch"], "args": {"value": 1}},
        {"name": "report", "function": f"{T}:echo", "dependsOn": ["clean"], "args": {"value": 1}},
        {
            "name": "alert",
            "function": f"{T}:echo",
            "dependsOn": ["fetch"],
            "triggerRule": "anyFailed",
            "args": {"value": "paged"},
        },
        {
            "name": "cleanup",
            "function": f"{T}:echo",
            "dependsOn": ["report"],
            "triggerRule": "allDone",
            "args": {"value": "done"},
        },
        {
            "name": "on-success-only",
            "function": f"{T}:echo",
            "dependsOn": ["alert"],
            "triggerRule": "anyFailed",
            "args": {"value": 1},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    phases = {name: t.phase for name, t in tasks.items()}
    assert phases == {
        "fetch": TaskPhase.FAILED,
        "clean": TaskPhase.UPSTREAM_FAILED,
        "report": TaskPhase.UPSTREAM_FAILED,
        "alert": TaskPhase.SUCCEEDED,
        "cleanup": TaskPhase.SUCCEEDED,
        "on-success-only": TaskPhase.SKIPPED,
    }
    assert tasks["fetch"].error == "RuntimeError: boom"


async def test_a_failed_sub_task_fails_its_fan_out(store: SqlStore) -> None:
    wf = workflow(
        {
            "name": "each",
            "function": f"{T}:boom",
            "forEach": [1, 2, 3],
            "args": {"message": "item {{ item }}"},
        },
        {"name": "after", "function": f"{T}:echo", "dependsOn": ["each"], "args": {"value": 1}},
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert tasks["each"].phase is TaskPhase.FAILED
    assert tasks["each"].error == "3 of 3 sub-tasks did not succeed: each[0], each[1], each[2]"
    assert tasks["each[1]"].error == "RuntimeError: item 2"
    assert tasks["after"].phase is TaskPhase.UPSTREAM_FAILED


async def test_retries_back_off_then_succeed(store: SqlStore, tmp_path: Any) -> None:
    marker = tmp_path / "marker"
    wf = workflow(
        {
            "name": "flaky",
            "function": f"{T}:flaky",
            "args": {"marker": str(marker), "fail_times": 2},
            "retry": {"limit": 2, "backoff": {"seconds": 0.05, "factor": 2}},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert tasks["flaky"].attempt == 3
    assert tasks["flaky"].output == 3
    logs = store.get_logs(run.id, "flaky")
    assert {line.attempt for line in logs if "transient failure" in line.text} == {1, 2}


async def test_retry_limit_is_respected_and_permanent_errors_are_not_retried(
    store: SqlStore,
) -> None:
    wf = workflow(
        {
            "name": "always",
            "function": f"{T}:boom",
            "retry": {"limit": 1, "backoff": {"seconds": 0.01}},
        },
        {
            "name": "denied",
            "function": f"{T}:refuse",
            "retry": {"limit": 3, "backoff": {"seconds": 0.01}},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert (tasks["always"].attempt, tasks["always"].phase) == (2, TaskPhase.FAILED)
    assert (tasks["denied"].attempt, tasks["denied"].error) == (
        1,
        "PermanentError: bad credentials",
    )


async def test_sync_tasks_run_in_threads_or_in_a_separate_process(store: SqlStore) -> None:
    wf = workflow(
        {"name": "thread", "function": f"{T}:pid"},
        {"name": "process", "function": f"{T}:pid", "isolation": "process"},
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert tasks["thread"].output == os.getpid()
    assert tasks["process"].output != os.getpid()


async def test_print_output_and_log_records_are_kept_per_attempt(store: SqlStore) -> None:
    wf = workflow(
        {"name": "chatty", "function": f"{T}:chatty"},
        {"name": "isolated", "function": f"{T}:chatty", "isolation": "process"},
        {"name": "shell", "command": ["sh", "-c", "echo out; echo err >&2"]},
    )
    run, _ = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    for task in ("chatty", "isolated"):
        text = "".join(line.text for line in store.get_logs(run.id, task))
        assert "hello from print" in text
        assert "hello from the task logger" in text
    shell = {(line.stream, line.text) for line in store.get_logs(run.id, "shell")}
    assert shell == {("stdout", "out\n"), ("stderr", "err\n")}


async def test_a_non_json_output_fails_the_task_clearly(store: SqlStore) -> None:
    run, tasks = await execute(store, workflow({"name": "bad", "function": f"{T}:not_json"}))
    assert run.phase is RunPhase.FAILED
    assert "not JSON-serialisable" in (tasks["bad"].error or "")


async def test_a_command_failure_reports_its_exit_status(store: SqlStore) -> None:
    wf = workflow({"name": "exit", "command": ["sh", "-c", "echo nope >&2; exit 3"]})
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert tasks["exit"].error == "command exited with status 3: nope"


@pytest.mark.parametrize("kind", ["async", "process", "command"])
async def test_a_task_timeout_stops_the_attempt(store: SqlStore, kind: str) -> None:
    task: dict[str, Any] = {"name": "slow", "timeoutSeconds": 0.3}
    if kind == "async":
        task |= {"function": f"{T}:async_sleep", "args": {"seconds": 30}}
    elif kind == "process":
        task |= {"function": f"{T}:sleep", "args": {"seconds": 30}, "isolation": "process"}
    else:
        task |= {"command": ["sleep", "30"]}
    run, tasks = await execute(store, workflow(task))
    assert run.phase is RunPhase.FAILED
    assert tasks["slow"].error == "timed out after 0.3s"
    assert (tasks["slow"].finished_at - tasks["slow"].started_at).total_seconds() < 10


async def test_a_thread_that_times_out_is_marked_and_abandoned(store: SqlStore) -> None:
    wf = workflow(
        {"name": "slow", "function": f"{T}:sleep", "args": {"seconds": 1.5}, "timeoutSeconds": 0.2}
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert (
        tasks["slow"].error
        == "timed out after 0.2s (the thread cannot be killed and was abandoned)"
    )


async def test_run_parallelism_caps_concurrent_tasks(store: SqlStore) -> None:
    from tests.integration import tasks as module

    module.peak = 0
    wf = workflow(*({"name": f"t{i}", "function": f"{T}:track"} for i in range(12)), parallelism=3)
    run, _ = await execute(store, wf)
    assert run.phase is RunPhase.SUCCEEDED
    assert module.peak == 3


async def test_a_pool_caps_concurrent_tasks_across_runs(store: SqlStore) -> None:
    from tests.integration import tasks as module
    from tideflow.engine.reconciler import EngineSettings

    module.peak = 0
    wf = workflow(
        *({"name": f"t{i}", "function": f"{T}:track", "pool": "vendor-api"} for i in range(10))
    )
    run, _ = await execute(
        store, wf, settings=EngineSettings(poll_seconds=0.05, pools={"vendor-api": 2})
    )
    assert run.phase is RunPhase.SUCCEEDED
    assert module.peak == 2


async def test_a_template_that_fails_to_render_fails_its_task(store: SqlStore) -> None:
    wf = workflow({"name": "a", "function": f"{T}:echo", "args": {"value": "{{ params.missing }}"}})
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert "cannot render the task's inputs" in (tasks["a"].error or "")


async def test_a_kubernetes_task_fails_clearly_on_the_local_engine(store: SqlStore) -> None:
    wf = workflow(
        {
            "name": "factors",
            "executor": "kubernetes",
            "container": {"image": "ghcr.io/acme/factors:1.2"},
        },
    )
    run, tasks = await execute(store, wf)
    assert run.phase is RunPhase.FAILED
    assert tasks["factors"].error == (
        "executor 'kubernetes' is not available in this engine; only local tasks run here"
    )
    assert tasks["factors"].attempt == 1


async def test_a_kubernetes_task_fails_clearly_through_the_front_doors_executor(
    store: SqlStore,
) -> None:
    # The CLI and the client route by executor kind, with only `local` registered.
    wf = workflow(
        {"name": "local", "command": ["sh", "-c", "echo 1"]},
        {"name": "factors", "executor": "kubernetes", "container": {"image": "busybox"}},
    )
    run = control.submit_run(store, wf)
    final = await Engine(store, engine_executor(threads=2), FAST).drive(run.id)
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert final.phase is RunPhase.FAILED
    assert (tasks["local"].phase, tasks["local"].output) == (TaskPhase.SUCCEEDED, 1)
    assert (tasks["factors"].attempt, tasks["factors"].error) == (
        1,
        "executor 'kubernetes' is not available in this engine; only local tasks run here",
    )


class _InlineStore:
    """The store with an inline commit that declines every other batch, like a
    SQLite store that finds the database locked."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.inline: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def commit_inline(self, batch: Any) -> set[int] | None:
        if len(self.inline) % 2:
            self.inline.append(False)
            return None  # "would have to wait": the engine commits on its DB thread
        self.inline.append(True)
        return self._store.commit(batch)


async def test_small_batches_are_committed_inline_when_the_store_can(store: SqlStore) -> None:
    wf = workflow(
        *(
            {
                "name": f"c{i}",
                "function": f"{T}:add",
                "args": {"a": i, "b": 1},
                "dependsOn": [f"c{i - 1}"] if i else [],
            }
            for i in range(6)
        )
    )
    inline = _InlineStore(store)
    final, tasks = await execute(inline, wf)
    assert final.phase is RunPhase.SUCCEEDED
    assert [tasks[f"c{i}"].output for i in range(6)] == [i + 1 for i in range(6)]
    assert set(inline.inline) == {True, False}  # some batches inline, some declined
    assert "workflow=" not in repr(final)  # a run's repr never formats its workflow
