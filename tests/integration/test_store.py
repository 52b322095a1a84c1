"""The Store as the front doors use it: workflows, runs, task listings, logs, control.

Every test runs on ``MemoryStore`` and on ``SqlStore`` with SQLite, PostgreSQL
and MariaDB (see ``any_store`` in ``conftest.py``), except those about SQL itself.
Ownership, leases and commit fencing are in ``test_store_ownership.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from tideflow.engine.ports import Batch, LogRecord, RunRecord, RunUpdate, Store, TaskRecord
from tideflow.errors import ConflictError, NotFoundError, StorageError, ValidationError
from tideflow.model import DesiredState, RunPhase, TaskPhase, Workflow
from tideflow.storage.store import SqlStore
from tideflow.testing import MemoryStore

if TYPE_CHECKING:
    from tests.integration.conftest import MakeRun

T0 = datetime(2026, 11, 30, 8, 30, 2, 123456, tzinfo=UTC)
TTL = timedelta(seconds=30)

MakeWorkflow = Callable[..., Workflow]
MakeTask = Callable[..., TaskRecord]


@pytest.fixture
def store(any_store: Store) -> Store:
    """These tests are about the ``Store`` contract: they run on ``MemoryStore`` too."""
    return any_store


@pytest.mark.parametrize("implementation", [SqlStore, MemoryStore])
def test_every_store_has_every_method_of_the_store_protocol(implementation: type) -> None:
    for name, member in vars(Store).items():
        if name.startswith("_") or not callable(member):
            continue
        implemented = getattr(implementation, name)
        assert inspect.signature(implemented) == inspect.signature(member), name


# -- workflows -----------------------------------------------------------------------


def test_apply_creates_then_reports_unchanged_then_configured(
    store: Store, make_workflow: MakeWorkflow
) -> None:
    assert store.apply_workflow(make_workflow()) == "created"
    first = store.get_workflow("default", "daily-bars")
    assert first.generation == 1
    assert first.workflow == make_workflow()

    assert store.apply_workflow(make_workflow()) == "unchanged"
    assert store.get_workflow("default", "daily-bars").generation == 1

    changed = make_workflow(parallelism=4)
    assert store.apply_workflow(changed) == "configured"
    second = store.get_workflow("default", "daily-bars")
    assert second.generation == 2
    assert second.workflow == changed
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at


def test_workflows_are_keyed_by_namespace_and_name(
    store: Store, make_workflow: MakeWorkflow
) -> None:
    store.apply_workflow(make_workflow("b"))
    store.apply_workflow(make_workflow("a"))
    assert store.apply_workflow(make_workflow("a", namespace="quant")) == "created"

    assert [(w.namespace, w.name) for w in store.list_workflows()] == [
        ("default", "a"),
        ("default", "b"),
        ("quant", "a"),
    ]
    assert [w.name for w in store.list_workflows("quant")] == ["a"]
    assert store.list_workflows("nowhere") == []


def test_concurrent_applies_of_a_new_workflow_create_it_once(
    database_url: str, make_workflow: MakeWorkflow
) -> None:
    stores = [SqlStore.from_url(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[str] = []

    def apply(applier: SqlStore) -> None:
        barrier.wait()
        results.append(applier.apply_workflow(make_workflow()))

    try:
        threads = [threading.Thread(target=apply, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(results) == ["created", "unchanged", "unchanged", "unchanged"]
        assert stores[0].get_workflow("default", "daily-bars").generation == 1
    finally:
        for applier in stores:
            applier.close()


def test_missing_workflow_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r'workflow "nope" not found in namespace default$'):
        store.get_workflow("default", "nope")


# -- runs ------------------------------------------------------------------------------


def test_create_run_assigns_an_id_and_reads_back_equal(store: Store, make_run: MakeRun) -> None:
    run = make_run(params={"trade_date": "2026-11-30", "symbols": ["600000.SH"]})
    assert run.id > 0
    assert run.created_at is not None

    for loaded in (store.get_run("default", "daily-bars-1"), store.get_run_by_id(run.id)):
        assert loaded == run
    assert run.generation == 1
    assert run.owner is None


def test_create_run_with_a_taken_name_is_a_conflict(store: Store, make_run: MakeRun) -> None:
    make_run("nightly")
    with pytest.raises(ConflictError, match='run "nightly" already exists in namespace "default"'):
        make_run("nightly")
    # The same name in another namespace is a different run.
    assert make_run("nightly", namespace="quant").namespace == "quant"
    assert len(store.list_runs()) == 2


def test_create_run_refuses_duplicate_task_names(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    with pytest.raises(ValidationError, match="duplicate task names"):
        make_run(tasks=[make_task("a"), make_task("a")])
    assert store.list_runs() == []


def test_missing_runs_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r'run "x" not found in namespace default$'):
        store.get_run("default", "x")
    with pytest.raises(NotFoundError, match="run with id 424242 not found"):
        store.get_run_by_id(424242)


def test_list_runs_newest_first_with_filters(
    store: Store, make_run: MakeRun, make_workflow: MakeWorkflow
) -> None:
    make_run("r1")
    make_run("r2", flow=make_workflow("other"))
    make_run("r3")
    make_run("r4", namespace="quant")

    assert [r.name for r in store.list_runs()] == ["r4", "r3", "r2", "r1"]
    assert [r.name for r in store.list_runs(namespace="default")] == ["r3", "r2", "r1"]
    assert [r.name for r in store.list_runs(workflow="daily-bars")] == ["r4", "r3", "r1"]
    assert [r.name for r in store.list_runs("default", "other")] == ["r2"]
    assert [r.name for r in store.list_runs(limit=2)] == ["r4", "r3"]


def test_a_run_keeps_its_workflow_snapshot(
    store: Store, make_run: MakeRun, make_workflow: MakeWorkflow
) -> None:
    store.apply_workflow(make_workflow())
    run = make_run(flow=make_workflow())
    store.apply_workflow(make_workflow(parallelism=2))
    assert store.get_run_by_id(run.id).workflow.spec.parallelism is None


# -- task listings ---------------------------------------------------------------------


def test_tasks_are_listed_in_insertion_order_including_later_inserts(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    names = ["zeta", "alpha", "mid"]
    run = make_run(tasks=[make_task(n) for n in names])
    claimed = store.claim_run(run.id, "engine-a", T0, T0 + TTL)
    assert claimed is not None
    children = [make_task(f"fetch-bars[{i}]", run_id=run.id) for i in (10, 2, 1)]
    store.commit(Batch("engine-a", T0 + TTL, task_inserts=children))

    expected = [*names, "fetch-bars[10]", "fetch-bars[2]", "fetch-bars[1]"]
    assert [t.name for t in store.list_tasks(run.id)] == expected
    assert store.load_tasks(run.id) == store.list_tasks(run.id)
    child = store.list_tasks(run.id)[3]
    assert (child.run_id, child.task, child.index) == (run.id, "fetch-bars", 10)


def test_outputs_round_trip_as_json(store: Store, make_run: MakeRun, make_task: MakeTask) -> None:
    outputs: dict[str, Any] = {
        "nested": {"bars": [[1, 2.5, None], {"k": [True, False]}], "empty": {}},
        "unicode": "浦发银行 — ünïcödé 🚀",
        "number": 12345678901234,
        "list": ["a", 1, 1.5, None, {"x": []}],
        "text": "x" * 100_000,  # beyond MySQL's 64 KiB TEXT
        "none": None,
    }
    tasks = [make_task(name, output=value) for name, value in outputs.items()]
    run = make_run(tasks=tasks)
    stored = {t.name: t.output for t in store.list_tasks(run.id)}
    assert stored == outputs


def test_fan_out_items_are_stored_with_their_children(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    spawned = {"function": "examples.quant:fetch_bars", "args": {"symbol": "600000.SH"}}
    run = make_run(
        tasks=[
            make_task("fetch-bars[0]", item="600000.SH"),
            make_task("fetch-bars[1]", item=spawned),
            make_task("report"),
        ]
    )
    # Updates rewrite the task's state; the item stays what the child was created for.
    store.claim_run(run.id, "engine-a", T0, T0 + TTL)
    done = make_task("fetch-bars[0]", TaskPhase.SUCCEEDED, run_id=run.id, attempt=1)
    store.commit(Batch("engine-a", T0 + TTL, task_updates=[done]))
    assert [t.item for t in store.list_tasks(run.id)] == ["600000.SH", spawned, None]


def test_datetimes_come_back_aware_utc_with_microseconds(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    east = timezone(timedelta(hours=8))
    started = datetime(2026, 11, 30, 16, 30, 2, 654321, tzinfo=east)
    run = make_run(
        created_at=T0,
        tasks=[make_task("a", started_at=started, finished_at=T0, not_before=T0)],
    )
    loaded = store.get_run_by_id(run.id)
    assert loaded.created_at == T0
    assert loaded.created_at is not None and loaded.created_at.tzinfo == UTC

    (task,) = store.list_tasks(run.id)
    assert task.started_at == started  # same instant...
    assert task.started_at is not None and task.started_at.tzinfo == UTC  # ...told in UTC
    assert task.started_at.microsecond == 654321
    assert task.finished_at == T0
    assert task.not_before == T0


def test_naive_datetimes_are_refused(store: Store, make_run: MakeRun, make_task: MakeTask) -> None:
    with pytest.raises(StorageError, match="naive datetime"):
        make_run(tasks=[make_task("a", started_at=datetime(2026, 1, 1))])


# -- logs ------------------------------------------------------------------------------


def test_get_logs_covers_a_task_and_its_fan_out_children(store: Store, make_run: MakeRun) -> None:
    run = make_run()
    store.claim_run(run.id, "engine-a", T0, T0 + TTL)

    def line(task: str, text: str, n: int) -> LogRecord:
        return LogRecord(run.id, task, 1, "stdout", text, T0 + timedelta(microseconds=n))

    logs = [
        line("fetch-bars[0]", "child 0", 1),
        line("list-symbols", "listing", 2),
        line("fetch-bars", "parent", 3),
        line("fetch-bars[1]", "child 1 ✓", 4),
        line("fetch-bars-extra", "another task", 5),
    ]
    assert store.commit(Batch("engine-a", T0 + TTL, logs=logs)) == set()

    stored = store.get_logs(run.id)
    assert [dataclasses.replace(log, id=0) for log in stored] == logs
    ids = [log.id for log in stored]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Following a log: only the lines written after the last one seen.
    assert [log.text for log in store.get_logs(run.id, after=ids[2])] == [
        log.text for log in logs[3:]
    ]
    assert [log.text for log in store.get_logs(run.id, "fetch-bars")] == [
        "child 0",
        "parent",
        "child 1 ✓",
    ]
    assert [log.text for log in store.get_logs(run.id, "fetch-bars[1]")] == ["child 1 ✓"]
    assert store.get_logs(run.id, "missing") == []
    assert store.get_logs(run.id + 1) == []


# -- control ---------------------------------------------------------------------------


def test_request_control_is_compare_and_set_on_generation(store: Store, make_run: MakeRun) -> None:
    run = make_run()
    assert store.read_control([run.id]) == {run.id: (DesiredState.RUNNING, 1)}

    assert store.request_control(run.id, 1, DesiredState.PAUSED) is True
    assert store.read_control([run.id]) == {run.id: (DesiredState.PAUSED, 2)}

    # A writer that read generation 1 lost the race: nothing is written.
    assert store.request_control(run.id, 1, DesiredState.TERMINATED) is False
    assert store.read_control([run.id]) == {run.id: (DesiredState.PAUSED, 2)}
    assert store.get_run_by_id(run.id).generation == 2


def test_request_control_on_a_missing_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="run with id 99 not found"):
        store.request_control(99, 1, DesiredState.PAUSED)


def test_read_control_omits_missing_ids(store: Store, make_run: MakeRun) -> None:
    runs = [make_run(f"r{i}") for i in range(3)]
    ids = [r.id for r in runs]
    assert store.read_control([*ids, 9999]) == {i: (DesiredState.RUNNING, 1) for i in ids}
    assert store.read_control([]) == {}


def test_reopen_resets_the_run_and_the_given_tasks(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    run = make_run()
    store.claim_run(run.id, "engine-a", T0, T0 + TTL)
    done = T0 + timedelta(minutes=1)
    failed = make_task("fetch-bars", TaskPhase.FAILED, run_id=run.id, attempt=3, error="boom")
    ok = make_task("list-symbols", TaskPhase.SUCCEEDED, run_id=run.id, attempt=1, output=["a"])
    finish = RunUpdate(run.id, RunPhase.FAILED, message="fetch-bars failed", finished_at=done)
    store.commit(
        Batch(
            "engine-a",
            T0 + TTL,
            run_updates=[finish],
            task_updates=[failed, ok],
            release=[run.id],
        )
    )
    assert store.get_run_by_id(run.id).phase is RunPhase.FAILED

    reset = make_task("fetch-bars", TaskPhase.PENDING, attempt=3)
    assert store.request_control(run.id, 1, DesiredState.RUNNING, reset_tasks=[reset], reopen=True)

    reopened = store.get_run_by_id(run.id)
    assert (reopened.phase, reopened.finished_at, reopened.message) == (
        RunPhase.PENDING,
        None,
        None,
    )
    assert reopened.generation == 2
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert (tasks["fetch-bars"].phase, tasks["fetch-bars"].error) == (TaskPhase.PENDING, None)
    assert tasks["list-symbols"].output == ["a"]  # untouched
    # Reopened and unowned, the run can be claimed again.
    assert [r.id for r in store.claim_runs("engine-b", T0, T0 + TTL, 10)] == [run.id]


def test_a_stale_control_request_does_not_reset_tasks(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    run = make_run()
    store.request_control(run.id, 1, DesiredState.PAUSED)
    stale = make_task("list-symbols", TaskPhase.SKIPPED)
    assert not store.request_control(run.id, 1, DesiredState.RUNNING, reset_tasks=[stale])
    assert {t.phase for t in store.list_tasks(run.id)} == {TaskPhase.PENDING}


# -- records are copies ----------------------------------------------------------------


def test_records_are_copies_that_never_alias_the_stored_state(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    params: dict[str, Any] = {"symbols": ["600000.SH"]}
    output: dict[str, Any] = {"rows": [1, 2]}
    run = make_run(params=params, tasks=[make_task("a", output=output)])
    # Changing what was written, or what was read, changes nothing stored.
    params["symbols"].append("written later")
    output["rows"].append(3)
    run.params["symbols"].append("changed after reading")
    store.list_tasks(run.id)[0].output["rows"].clear()
    store.get_run_by_id(run.id).own_labels["team"] = "d"

    again = store.get_run_by_id(run.id)
    assert again.params == {"symbols": ["600000.SH"]}
    assert again.own_labels == {}
    assert store.list_tasks(run.id)[0].output == {"rows": [1, 2]}


def test_the_memory_store_wakes_subscribers_on_new_runs_and_control_requests(
    make_workflow: MakeWorkflow, make_task: MakeTask
) -> None:
    store = MemoryStore()
    woken: list[str] = []
    stop = store.subscribe(lambda: woken.append("wake"))
    assert stop is not None
    flow = make_workflow()
    record = RunRecord(
        0, "default", "r1", flow.metadata.name, flow, {}, DesiredState.RUNNING, RunPhase.PENDING
    )
    run = store.create_run(record, [make_task("a")])
    assert woken == ["wake"]
    assert store.request_control(run.id, 1, DesiredState.PAUSED)
    assert not store.request_control(run.id, 1, DesiredState.RUNNING)  # lost: no write, no wake
    assert woken == ["wake", "wake"]
    stop()
    store.request_control(run.id, 2, DesiredState.RUNNING)
    assert woken == ["wake", "wake"]
