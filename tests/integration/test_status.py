"""The status an engine persists (observedGeneration) and the typed events it commits and emits."""

from __future__ import annotations

import asyncio

import pytest

import tideflow
from tests.integration.enginekit import engine, until, workflow
from tideflow.engine import control, status
from tideflow.engine.driving import Event
from tideflow.engine.ports import Batch
from tideflow.model import EventKind, RunPhase, TaskPhase
from tideflow.storage.store import SqlStore

T = "tests.integration.tasks"
E = EventKind


async def test_the_engine_persists_the_generation_it_acted_on(store: SqlStore) -> None:
    wf = workflow(
        {"name": "first", "function": f"{T}:async_sleep", "args": {"seconds": 0.5}},
        {"name": "second", "function": f"{T}:echo", "dependsOn": ["first"], "args": {"value": 2}},
    )
    run = control.submit_run(store, wf)
    assert store.get_run_by_id(run.id).observed_generation == 0  # no engine has seen it yet
    driving = asyncio.create_task(engine(store).drive(run.id))

    def task_phase(name: str) -> TaskPhase:
        return {t.name: t.phase for t in store.list_tasks(run.id)}[name]

    await until(lambda: task_phase("first") is TaskPhase.RUNNING)
    adopted = store.get_run_by_id(run.id)
    assert adopted.observed_generation == adopted.generation == 1

    await asyncio.to_thread(control.request, store, "default", run.name, "pause")
    requested = store.get_run_by_id(run.id)
    assert requested.generation == 2
    await until(lambda: store.get_run_by_id(run.id).observed_generation == 2)
    paused = store.get_run_by_id(run.id)
    assert paused.phase is RunPhase.PAUSED  # written in the same commit
    shown = status.run_status(paused, store.list_tasks(run.id))
    assert shown.observed_generation == paused.generation == 2

    await asyncio.to_thread(control.request, store, "default", run.name, "resume")
    final = await asyncio.wait_for(driving, 20)
    assert final.phase is RunPhase.SUCCEEDED
    assert final.observed_generation == final.generation == 3


async def test_batches_carry_the_typed_events_that_listeners_then_receive(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    committed: list[tuple[EventKind, str | None]] = []
    commit = store.commit

    def recording(batch: Batch) -> set[int]:
        lost = commit(batch)
        committed.extend((e.kind, e.task) for e in batch.events)
        return lost

    commit_inline = store.commit_inline

    def recording_inline(batch: Batch) -> set[int] | None:
        lost = commit_inline(batch)
        if lost is not None:  # committed on the loop; else it goes through commit()
            committed.extend((e.kind, e.task) for e in batch.events)
        return lost

    monkeypatch.setattr(store, "commit", recording)
    monkeypatch.setattr(store, "commit_inline", recording_inline)
    wf = workflow(
        {"name": "a", "function": f"{T}:echo", "args": {"value": 1}},
        {"name": "b", "function": f"{T}:boom", "dependsOn": ["a"]},
    )
    run = control.submit_run(store, wf)
    driver = engine(store)
    received: list[Event] = []
    driver.listeners.append(received.append)
    final = await driver.drive(run.id)

    assert final.phase is RunPhase.FAILED
    expected = [
        (E.RUN_STARTED, None),
        (E.TASK_STARTED, "a"),
        (E.TASK_SUCCEEDED, "a"),
        (E.TASK_STARTED, "b"),
        (E.TASK_FAILED, "b"),
        (E.RUN_FAILED, None),
    ]
    assert committed == expected
    assert [(e.kind, e.task) for e in received] == expected
    failed = received[4]
    assert failed.error is not None and failed.attempt == 1
    assert failed.counts is not None and failed.counts.failed == 1
    last = received[-1].counts
    assert last == status.task_counts(store.list_tasks(run.id))


def test_the_client_reads_the_same_status(database_url: str) -> None:
    flow = workflow({"name": "a", "function": f"{T}:echo", "args": {"value": 1}}, name="st-flow")
    with tideflow.connect(database_url) as tf:
        tf.run(flow, name="st-1", wait=True)
        shown = tf.status("st-1")
        record = tf.get("st-1")
        assert shown == status.run_status(record, tf.tasks("st-1"))
        assert shown.phase is RunPhase.SUCCEEDED
        assert shown.observed_generation == record.generation == 1
        assert shown.conditions[0].message == "1/1 tasks done"
        assert (shown.tasks.total, shown.tasks.succeeded) == (1, 1)
