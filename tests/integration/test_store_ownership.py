"""The Store as the engine uses it: claims, leases, fenced group commits, release.

These are the guarantees behind "two engines never run the same attempt": every
test runs on ``MemoryStore`` and on ``SqlStore`` with SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tideflow.engine.ports import Batch, LogRecord, RunRecord, RunUpdate, Store, TaskRecord
from tideflow.errors import StorageError
from tideflow.model import RunPhase, TaskPhase
from tideflow.storage.store import SqlStore
from tideflow.testing import MemoryStore

if TYPE_CHECKING:
    from tests.integration.conftest import MakeRun

T0 = datetime(2026, 11, 30, 8, 30, 2, 123456, tzinfo=UTC)
TTL = timedelta(seconds=30)
LATER = T0 + 2 * TTL  # when leases taken at T0 have expired

MakeTask = Callable[..., TaskRecord]


@pytest.fixture
def store(any_store: Store) -> Store:
    """These tests are about the ``Store`` contract: they run on ``MemoryStore`` too."""
    return any_store


def claimed(store: Store, run: RunRecord, owner: str = "engine-a") -> RunRecord:
    record = store.claim_run(run.id, owner, T0, T0 + TTL)
    assert record is not None
    return record


# -- claim_run ---------------------------------------------------------------------------


def test_claim_run_takes_an_unowned_run(store: Store, make_run: MakeRun) -> None:
    run = make_run()
    record = claimed(store, run)
    assert (record.owner, record.lease_expires_at) == ("engine-a", T0 + TTL)
    assert store.get_run_by_id(run.id).owner == "engine-a"


def test_claim_run_is_compare_and_set_only_one_owner_wins(store: Store, make_run: MakeRun) -> None:
    run = make_run()
    claimed(store, run, "engine-a")
    assert store.claim_run(run.id, "engine-b", T0 + TTL / 2, T0 + 2 * TTL) is None
    assert store.get_run_by_id(run.id).owner == "engine-a"


def test_claim_run_succeeds_again_for_its_owner_and_extends_the_lease(
    store: Store, make_run: MakeRun
) -> None:
    run = make_run()
    claimed(store, run)
    again = store.claim_run(run.id, "engine-a", T0 + TTL / 2, T0 + 3 * TTL)
    assert again is not None and again.lease_expires_at == T0 + 3 * TTL


def test_an_expired_lease_can_be_claimed_by_another_owner(store: Store, make_run: MakeRun) -> None:
    run = make_run()
    claimed(store, run, "engine-a")
    taken = store.claim_run(run.id, "engine-b", LATER, LATER + TTL)
    assert taken is not None and taken.owner == "engine-b"


def test_finished_and_missing_runs_cannot_be_claimed(store: Store, make_run: MakeRun) -> None:
    for phase in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.TERMINATED):
        run = make_run(f"done-{phase.value.lower()}", phase=phase)
        assert store.claim_run(run.id, "engine-a", T0, T0 + TTL) is None
    assert store.claim_run(123456, "engine-a", T0, T0 + TTL) is None


# -- claim_runs --------------------------------------------------------------------------


def test_claim_runs_takes_unowned_and_expired_unfinished_runs_oldest_first(
    store: Store, make_run: MakeRun
) -> None:
    free = make_run("free")
    held = make_run("held")
    expired = make_run("expired")
    make_run("finished", phase=RunPhase.SUCCEEDED)
    paused = make_run("paused", phase=RunPhase.PAUSED)
    store.claim_run(held.id, "engine-a", LATER, LATER + TTL)  # still valid at LATER
    store.claim_run(expired.id, "engine-a", T0, T0 + TTL)  # expired at LATER

    got = store.claim_runs("engine-b", LATER, LATER + TTL, limit=10)
    assert [r.name for r in got] == ["free", "expired", "paused"]
    assert all(r.owner == "engine-b" and r.lease_expires_at == LATER + TTL for r in got)
    assert store.get_run_by_id(held.id).owner == "engine-a"
    assert {free.id, paused.id} <= {r.id for r in got}


def test_claim_runs_respects_the_limit_and_a_second_owner_gets_the_rest(
    store: Store, make_run: MakeRun
) -> None:
    for i in range(5):
        make_run(f"r{i}")
    first = store.claim_runs("engine-a", T0, T0 + TTL, limit=3)
    second = store.claim_runs("engine-b", T0, T0 + TTL, limit=3)
    assert [r.name for r in first] == ["r0", "r1", "r2"]
    assert [r.name for r in second] == ["r3", "r4"]
    assert store.claim_runs("engine-c", T0, T0 + TTL, limit=3) == []
    assert store.claim_runs("engine-c", T0, T0 + TTL, limit=0) == []


def test_concurrent_claims_never_hand_a_run_to_two_engines(store: Store, make_run: MakeRun) -> None:
    runs = [make_run(f"r{i}") for i in range(20)]
    engines: list[SqlStore | MemoryStore]
    if isinstance(store, SqlStore):  # four engines, four connection pools on one database
        url = store.engine.url.render_as_string(hide_password=False)
        engines = [SqlStore.from_url(url) for _ in range(4)]
    else:  # four threads on one MemoryStore: its lock is what is tested
        assert isinstance(store, MemoryStore)
        engines = [store] * 4
    barrier = threading.Barrier(len(engines))
    results: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claim(index: int, engine_store: Store) -> None:
        owner = f"engine-{index}"
        try:
            barrier.wait()
            mine: list[int] = []
            while batch := engine_store.claim_runs(owner, T0, T0 + TTL, limit=3):
                mine.extend(r.id for r in batch)
            results[owner] = mine
        except BaseException as error:  # reported to the test thread below
            errors.append(error)

    threads = [threading.Thread(target=claim, args=item) for item in enumerate(engines)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for engine_store in engines:
            engine_store.close()

    assert not errors
    everything = [run_id for ids in results.values() for run_id in ids]
    assert sorted(everything) == sorted(r.id for r in runs)  # each exactly once
    owners = {r.id: r.owner for r in store.list_runs()}
    assert all(run_id in results[owners[run_id] or ""] for run_id in everything)


# -- leases ------------------------------------------------------------------------------


def test_renew_leases_extends_only_runs_still_held(store: Store, make_run: MakeRun) -> None:
    mine, stolen = make_run("mine"), make_run("stolen")
    claimed(store, mine)
    claimed(store, stolen)
    assert store.claim_run(stolen.id, "engine-b", LATER, LATER + TTL) is not None

    until = T0 + 5 * TTL
    assert store.renew_leases("engine-a", [mine.id, stolen.id, 9999], until) == {mine.id}
    assert store.get_run_by_id(mine.id).lease_expires_at == until
    assert store.get_run_by_id(stolen.id).lease_expires_at == LATER + TTL
    assert store.renew_leases("engine-a", [], until) == set()


def test_renewing_to_the_same_instant_still_reports_the_run_held(
    store: Store, make_run: MakeRun
) -> None:
    run = make_run()
    claimed(store, run)
    # MySQL counts *changed* rows unless told otherwise; an unchanged lease must not look lost.
    assert store.renew_leases("engine-a", [run.id], T0 + TTL) == {run.id}
    unchanged = RunUpdate(run.id, RunPhase.PENDING)
    assert store.commit(Batch("engine-a", T0 + TTL, run_updates=[unchanged])) == set()


def test_release_gives_up_only_the_owners_runs(store: Store, make_run: MakeRun) -> None:
    mine, theirs = make_run("mine"), make_run("theirs")
    claimed(store, mine, "engine-a")
    claimed(store, theirs, "engine-b")
    store.release("engine-a", [mine.id, theirs.id])
    assert (store.get_run_by_id(mine.id).owner, store.get_run_by_id(mine.id).lease_expires_at) == (
        None,
        None,
    )
    assert store.get_run_by_id(theirs.id).owner == "engine-b"
    store.release("engine-a", [])
    # Released, the run is free for anyone at once.
    assert store.claim_run(mine.id, "engine-c", T0, T0 + TTL) is not None


# -- commit ------------------------------------------------------------------------------


def test_commit_applies_a_whole_tick(store: Store, make_run: MakeRun, make_task: MakeTask) -> None:
    run = claimed(store, make_run())
    started = T0 + timedelta(seconds=1)
    batch = Batch(
        "engine-a",
        T0 + 2 * TTL,
        run_updates=[RunUpdate(run.id, RunPhase.RUNNING, message="1/3", started_at=started)],
        task_inserts=[make_task(f"fetch-bars[{i}]", run_id=run.id) for i in range(2)],
        task_updates=[
            make_task(
                "list-symbols",
                TaskPhase.SUCCEEDED,
                run_id=run.id,
                attempt=1,
                output=["600000.SH", "000001.SZ"],
                started_at=started,
                finished_at=started + timedelta(milliseconds=5),
            ),
            make_task("fetch-bars[0]", TaskPhase.QUEUED, run_id=run.id, attempt=1),
        ],
        logs=[LogRecord(run.id, "list-symbols", 1, "log", "listed 2 symbols", started)],
    )
    assert store.commit(batch) == set()

    after = store.get_run_by_id(run.id)
    assert (after.phase, after.message, after.started_at) == (RunPhase.RUNNING, "1/3", started)
    assert after.lease_expires_at == T0 + 2 * TTL  # the commit renewed the lease
    tasks = {t.name: t for t in store.list_tasks(run.id)}
    assert list(tasks) == ["list-symbols", "fetch-bars", "fetch-bars[0]", "fetch-bars[1]"]
    assert tasks["list-symbols"].output == ["600000.SH", "000001.SZ"]
    assert tasks["list-symbols"].finished_at == started + timedelta(milliseconds=5)
    assert (tasks["fetch-bars[0]"].phase, tasks["fetch-bars[0]"].attempt) == (TaskPhase.QUEUED, 1)
    assert tasks["fetch-bars[1]"].phase is TaskPhase.PENDING
    assert [log.text for log in store.get_logs(run.id)] == ["listed 2 symbols"]


def test_commit_by_a_former_owner_is_fenced_off(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    lost = claimed(store, make_run("lost"), "engine-a")
    kept = claimed(store, make_run("kept"), "engine-a")
    # engine-a stalls past its lease; engine-b adopts one of its runs.
    assert store.claim_run(lost.id, "engine-b", LATER, LATER + TTL) is not None

    batch = Batch("engine-a", LATER + TTL)
    for run in (lost, kept):
        batch.run_updates.append(RunUpdate(run.id, RunPhase.RUNNING))
        batch.task_inserts.append(make_task("extra", run_id=run.id))
        batch.task_updates.append(make_task("list-symbols", TaskPhase.RUNNING, run_id=run.id))
        batch.logs.append(LogRecord(run.id, "list-symbols", 1, "stdout", "hi", LATER))
    batch.release.append(lost.id)

    assert store.commit(batch) == {lost.id}

    untouched = store.get_run_by_id(lost.id)
    assert (untouched.phase, untouched.owner) == (RunPhase.PENDING, "engine-b")
    assert untouched.lease_expires_at == LATER + TTL
    assert [t.name for t in store.list_tasks(lost.id)] == ["list-symbols", "fetch-bars"]
    assert {t.phase for t in store.list_tasks(lost.id)} == {TaskPhase.PENDING}
    assert store.get_logs(lost.id) == []

    assert store.get_run_by_id(kept.id).phase is RunPhase.RUNNING
    assert [t.name for t in store.list_tasks(kept.id)] == ["list-symbols", "fetch-bars", "extra"]
    assert len(store.get_logs(kept.id)) == 1


def test_commit_of_an_unowned_run_reports_it_lost(
    store: Store, make_run: MakeRun, make_task: MakeTask
) -> None:
    run = make_run()
    batch = Batch("engine-a", T0 + TTL, task_updates=[make_task("fetch-bars", run_id=run.id)])
    assert store.commit(batch) == {run.id}
    assert store.commit(Batch("engine-a", T0 + TTL)) == set()  # empty batch: nothing to do


def test_commit_is_all_or_nothing(store: Store, make_run: MakeRun, make_task: MakeTask) -> None:
    run = claimed(store, make_run())
    batch = Batch(
        "engine-a",
        T0 + 2 * TTL,
        run_updates=[RunUpdate(run.id, RunPhase.RUNNING)],
        logs=[LogRecord(run.id, "a", 1, "stdout", "never", T0)],
        # Inserting an existing task instance violates the primary key.
        task_inserts=[make_task("list-symbols", run_id=run.id)],
    )
    with pytest.raises(StorageError, match="failed to commit"):
        store.commit(batch)
    after = store.get_run_by_id(run.id)
    assert (after.phase, after.lease_expires_at) == (RunPhase.PENDING, T0 + TTL)
    assert store.get_logs(run.id) == []


def test_commit_releases_finished_runs(store: Store, make_run: MakeRun) -> None:
    run = claimed(store, make_run())
    done = T0 + TTL / 2
    batch = Batch(
        "engine-a",
        T0 + TTL,
        run_updates=[RunUpdate(run.id, RunPhase.SUCCEEDED, started_at=T0, finished_at=done)],
        release=[run.id],
    )
    assert store.commit(batch) == set()
    after = store.get_run_by_id(run.id)
    assert (after.owner, after.lease_expires_at, after.phase) == (None, None, RunPhase.SUCCEEDED)
    assert after.finished_at == done
    assert store.claim_runs("engine-b", LATER, LATER + TTL, 10) == []


def test_commit_handles_a_large_tick(store: Store, make_run: MakeRun, make_task: MakeTask) -> None:
    run = claimed(store, make_run(tasks=[]))
    children = [make_task(f"fetch-bars[{i}]", run_id=run.id) for i in range(2000)]
    assert store.commit(Batch("engine-a", T0 + TTL, task_inserts=children)) == set()
    finished = [
        make_task(t.name, TaskPhase.SUCCEEDED, run_id=run.id, attempt=1, output={"rows": i})
        for i, t in enumerate(children)
    ]
    logs = [LogRecord(run.id, t.name, 1, "stdout", "ok", T0) for t in children]
    assert store.commit(Batch("engine-a", T0 + TTL, task_updates=finished, logs=logs)) == set()
    tasks = store.list_tasks(run.id)
    assert [t.output for t in tasks] == [{"rows": i} for i in range(2000)]
    assert len(store.get_logs(run.id, "fetch-bars")) == 2000
